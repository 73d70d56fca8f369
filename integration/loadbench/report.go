// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// report is the run's outcome, printed as tables or, with --json, as JSON.
type report struct {
	Started  time.Time         `json:"started"`
	Machine  map[string]string `json:"machine"`
	Reps     int               `json:"reps"`
	Duration string            `json:"duration"`
	Warmup   string            `json:"warmup"`
	Sessions int               `json:"idle_sessions"`
	// Skipped are the peers not in the run, with the reason.
	Skipped map[string]string `json:"skipped_peers"`
	Cases   []caseReport      `json:"cases"`
	// Failures counts failed operations (and cases that could not run);
	// FailureList names them by measurement and target.
	Failures    int      `json:"failures"`
	FailureList []string `json:"failure_list,omitempty"`
}

type caseReport struct {
	Name    string      `json:"name"`
	Title   string      `json:"title"`
	Targets []string    `json:"targets"`
	Rows    []rowReport `json:"rows"`
	// Notes say why a target has no value in some rows.
	Notes []string `json:"notes,omitempty"`
	// Error is set when the case could not run at all.
	Error string `json:"error,omitempty"`
}

type rowReport struct {
	Metric        string               `json:"metric"`
	Unit          string               `json:"unit"`
	LowerIsBetter bool                 `json:"lower_is_better"`
	Values        map[string]*cellData `json:"values"`
	// Ratios are "a÷b": a's median over b's.
	Ratios map[string]float64 `json:"ratios"`
	ratios []string           // the keys of Ratios in print order
}

type cellData struct {
	Median   *float64  `json:"median,omitempty"`
	Runs     []float64 `json:"runs,omitempty"`
	Failures int       `json:"failures"`
	Errors   []string  `json:"errors,omitempty"`
	Skipped  string    `json:"skipped,omitempty"`
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// caseReport collects a case's medians and ratios from the measurements.
func (e *env) caseReport(c *benchCase, targets []*target) caseReport {
	cr := caseReport{Name: c.name, Title: c.title}
	notes := map[string]bool{}
	present := map[string]bool{}
	for _, t := range targets {
		cr.Targets = append(cr.Targets, t.name)
		present[t.name] = true
	}
	for _, r := range c.rows {
		rr := rowReport{Metric: r.label, Unit: r.unit, LowerIsBetter: r.lower, Values: map[string]*cellData{}, Ratios: map[string]float64{}}
		for _, t := range targets {
			cd := &cellData{}
			for _, o := range e.memo[r.m.key][t.name] {
				cd.Failures += o.failures
				for _, err := range o.errs {
					if len(cd.Errors) < maxErrs {
						cd.Errors = append(cd.Errors, err)
					}
				}
				if o.skipped != "" {
					cd.Skipped = o.skipped
					continue
				}
				if v, ok := o.values[r.value]; ok {
					cd.Runs = append(cd.Runs, v)
				}
			}
			if len(cd.Runs) > 0 {
				m := median(cd.Runs)
				cd.Median = &m
			}
			if cd.Skipped != "" {
				notes[t.name+": "+cd.Skipped] = true
			}
			rr.Values[t.name] = cd
		}
		for _, q := range c.ratios {
			if !present[q[0]] || !present[q[1]] {
				continue
			}
			k := q[0] + "÷" + q[1]
			rr.ratios = append(rr.ratios, k)
			a, b := rr.Values[q[0]], rr.Values[q[1]]
			if a.Median != nil && b.Median != nil && *b.Median != 0 {
				rr.Ratios[k] = *a.Median / *b.Median
			}
		}
		cr.Rows = append(cr.Rows, rr)
	}
	for n := range notes {
		cr.Notes = append(cr.Notes, n)
	}
	sort.Strings(cr.Notes)
	return cr
}

// failures totals the failed operations of every measurement run (rows
// of one measurement share them) and the cases that could not run.
func (e *env) failures(r *report) {
	r.Failures, r.FailureList = 0, nil
	var keys []string
	for k := range e.memo {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var names []string
		for t := range e.memo[k] {
			names = append(names, t)
		}
		sort.Strings(names)
		for _, t := range names {
			n := 0
			var errs []string
			for _, o := range e.memo[k][t] {
				n += o.failures
				for _, err := range o.errs {
					if len(errs) < maxErrs {
						errs = append(errs, err)
					}
				}
			}
			if n > 0 {
				r.Failures += n
				r.FailureList = append(r.FailureList, fmt.Sprintf("%s, %s: %d failed; first: %s", k, t, n, strings.Join(errs, " | ")))
			}
		}
	}
	for _, c := range r.Cases {
		if c.Error != "" {
			r.Failures++
			r.FailureList = append(r.FailureList, fmt.Sprintf("case %s not run: %s", c.Name, c.Error))
		}
	}
}

func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// num formats a value with the digits that mean something at its size.
func num(v float64) string {
	switch a := v; {
	case a >= 100 || a <= -100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10 || a <= -10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// writeTables prints each case as a Markdown table: medians, then ratios.
func (r *report) writeTables(w io.Writer) {
	fmt.Fprintf(w, "# maildirector load bench, %s\n\n", r.Started.Format("2006-01-02 15:04 MST"))
	var keys []string
	for k := range r.Machine {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "- %s: %s\n", k, r.Machine[k])
	}
	fmt.Fprintf(w, "- %d repetitions of %s each (after %s warm-up), targets interleaved; medians shown\n", r.Reps, r.Duration, r.Warmup)
	var skipped []string
	for p, why := range r.Skipped {
		skipped = append(skipped, fmt.Sprintf("- %s: not measured: %s\n", p, why))
	}
	sort.Strings(skipped)
	for _, s := range skipped {
		fmt.Fprint(w, s)
	}
	for _, c := range r.Cases {
		fmt.Fprintf(w, "\n## %s: %s\n\n", c.Name, c.Title)
		if c.Error != "" {
			fmt.Fprintf(w, "NOT RUN: %s\n", c.Error)
			continue
		}
		if len(c.Rows) == 0 {
			continue
		}
		head := append([]string{"metric"}, c.Targets...)
		head = append(head, c.Rows[0].ratios...)
		fmt.Fprintf(w, "| %s |\n|:---|%s\n", strings.Join(head, " | "), strings.Repeat("---:|", len(head)-1))
		for _, row := range c.Rows {
			cells := []string{row.Metric}
			for _, t := range c.Targets {
				cd := row.Values[t]
				s := "—"
				if cd.Median != nil {
					s = num(*cd.Median)
				}
				if cd.Failures > 0 {
					s += fmt.Sprintf(" (%d failed)", cd.Failures)
				}
				cells = append(cells, s)
			}
			for _, k := range row.ratios {
				if v, ok := row.Ratios[k]; ok {
					cells = append(cells, fmt.Sprintf("%.2f", v))
				} else {
					cells = append(cells, "—")
				}
			}
			fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
		}
		for _, n := range c.Notes {
			fmt.Fprintf(w, "\n- %s", n)
		}
		if len(c.Notes) > 0 {
			fmt.Fprintln(w)
		}
	}
	if r.Failures == 0 {
		fmt.Fprintf(w, "\nEvery operation succeeded.\n")
		return
	}
	fmt.Fprintf(w, "\n## FAILURES: %d\n\n", r.Failures)
	for _, f := range r.FailureList {
		fmt.Fprintf(w, "- %s\n", f)
	}
}
