// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// printResults writes the results as tables.
func printResults(w io.Writer, r results) {
	fmt.Fprintf(w, "scalebench %s (%s, %.0f s)\n", strings.Join(r.Args, " "), r.GoVersion, r.Seconds)
	for _, s := range r.Store {
		printStore(w, s)
	}
	if r.Expiry != nil {
		printExpiry(w, *r.Expiry)
	}
	if r.Sessions != nil {
		printSessions(w, *r.Sessions)
	}
}

func table(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
}

func printStore(w io.Writer, s storeResult) {
	fmt.Fprintf(w, "\n== store: %s, three gateways ==\n", s.Cluster)
	fmt.Fprintf(w, "one assignment as stored: key %q (%d B) + value %q (%d B) = %d B\n",
		s.AssignmentKey, len(s.AssignmentKey), s.AssignmentValue, len(s.AssignmentValue), s.AssignmentBytes)
	tw := table(w)
	fmt.Fprintln(tw, "logins\tgateways\tin flight each\tcount\terrors\tper s (median)\truns: min–max\tp50 ms\tp99 ms\tetcd writes each\tgateway CPU µs each\tobserver CPU µs per placement seen\tetcd CPU µs each\t")
	for _, x := range s.RateMedians {
		obs := "-"
		if x.Gateways == 1 && x.Case == "new" {
			obs = fmt.Sprintf("%.1f", x.ObserverCPU)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.0f\t%d: %.0f–%.0f\t%.2f\t%.2f\t%.3f\t%.1f\t%s\t%.1f\t\n",
			x.Case, x.Gateways, x.Conc, x.Logins, x.Errors, x.PerSecond, x.Runs, x.Min, x.Max, x.P50MS, x.P99MS, x.WritesPer, x.GatewayCPU, obs, x.MemberCPU)
	}
	tw.Flush()
	tw = table(w)
	fmt.Fprintln(tw, "known users\tgateway heap MiB (each)\tgateway PSS MiB\tmember heap MiB\tmember PSS MiB\tdb MiB\tdb in use MiB\tdb defragmented MiB\tcompact s (stall)\tdefrag s (stall)\tgateways fenced s\tfresh gateway start ms\tfresh gateway heap MiB\t")
	for _, x := range s.Scale {
		var heaps, pss, mh, mp []string
		for i := range x.GatewayHeap {
			heaps = append(heaps, fmt.Sprintf("%.1f", mib(x.GatewayHeap[i])))
			pss = append(pss, fmt.Sprintf("%.1f", float64(x.GatewayPSSKiB[i])/1024))
		}
		for _, m := range x.Members {
			if m.HeapAlloc == 0 {
				mh = append(mh, "-") // a Debian etcd: no heap figure
			} else {
				mh = append(mh, fmt.Sprintf("%.1f", mib(m.HeapAlloc)))
			}
			mp = append(mp, fmt.Sprintf("%.1f", float64(m.PSSKiB)/1024))
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%.1f\t%.1f\t%.1f\t%.2f (%.2f)\t%.2f (%.2f)\t%.0f\t%.0f\t%.1f\t\n", x.Users, strings.Join(heaps, " "), strings.Join(pss, " "),
			strings.Join(mh, " "), strings.Join(mp, " "), mib(uint64(x.DBSize)), mib(uint64(x.DBInUse)), mib(uint64(x.DBDefrag)),
			x.CompactS, x.CompactStallS, x.DefragS, x.DefragStallS, x.FencedS, x.FreshStartMS, mib(x.FreshHeap))
	}
	tw.Flush()
	heap := "-"
	if s.MemberHeapPerUser != 0 {
		heap = fmt.Sprintf("%.0f B", s.MemberHeapPerUser)
	}
	fmt.Fprintf(w, "per known user: gateway heap %.0f B (a fresh gateway's %.0f B); etcd member heap %s, PSS %.0f B (each member); db %.1f MiB per 100k (%.1f MiB defragmented, %.0f B per assignment)\n",
		s.GatewayHeapPerUser, s.FreshHeapPerUser, heap, s.MemberPSSPerUser, s.DBBytesPer100k/(1<<20), s.DBBytesPer100kDefrag/(1<<20), s.DBBytesPer100kDefrag/1e5)
}

func printExpiry(w io.Writer, e expiryResult) {
	fmt.Fprintf(w, "\n== expiry: %s, user_expire %s, waves of %d users who log in once and leave, %d of the first wave staying ==\n", e.Cluster, e.UserExpire, e.Wave, e.Active)
	tw := table(w)
	fmt.Fprintln(tw, "step\tstored assignments\tplacer heap MiB\tobserver heap MiB\tmember heap MiB\tmember heap compacted MiB\tdb MiB (in use)\tdb defragmented MiB\twaited s\t")
	for _, s := range e.Steps {
		comp := "-"
		if s.MemberHeapCompacted > 0 {
			comp = fmt.Sprintf("%.1f", mib(s.MemberHeapCompacted))
		}
		placer, member := "-", "-"
		if s.PlacerHeap > 0 {
			placer = fmt.Sprintf("%.1f", mib(s.PlacerHeap))
		}
		if s.MemberHeap > 0 {
			member = fmt.Sprintf("%.1f", mib(s.MemberHeap))
		}
		db, defrag := "-", "-"
		if s.DBSize > 0 {
			db = fmt.Sprintf("%.1f (%.1f)", mib(uint64(s.DBSize)), mib(uint64(s.DBInUse)))
		}
		if s.DBDefrag > 0 {
			defrag = fmt.Sprintf("%.1f", mib(uint64(s.DBDefrag)))
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.1f\t%s\t%s\t%s\t%s\t%.0f\t\n", s.Step, s.Stored, placer, mib(s.ObserverHeap), member, comp, db, defrag, s.WaitedS)
	}
	tw.Flush()
}

func printSessions(w io.Writer, s sessionsResult) {
	fmt.Fprintf(w, "\n== idle relayed IMAP sessions (LOGIN, SELECT INBOX) through one maildirector serve (store %s) to two Dovecot 2.3 backends ==\n", s.Store)
	tw := table(w)
	fmt.Fprintln(tw, "sessions\tgateway PSS MiB\tRSS MiB\tfds\tgoroutines\tthreads\theap MiB\tstacks MiB\tmachine slab MiB\tDovecot PSS MiB\topened in s\t")
	for _, p := range s.Points {
		fmt.Fprintf(tw, "%d\t%.1f\t%.1f\t%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t\n", p.Sessions, float64(p.PSSKiB)/1024, float64(p.RSSKiB)/1024,
			p.FDs, p.Goroutines, p.Threads, mib(uint64(p.HeapInuse)), mib(uint64(p.StackInuse)), float64(p.SlabKiB)/1024, float64(p.DovecotPSSKiB)/1024, p.OpenSeconds)
	}
	tw.Flush()
	x := s.Slope
	fmt.Fprintf(w, "per session (least squares): gateway PSS %.1f KiB (heap %.1f KiB, goroutine stacks %.1f KiB), %.2f fds, %.2f goroutines; Dovecot %.0f KiB; machine slab %.1f KiB (every socket and file of the session, both sides)\n",
		x.PSSKiB, x.HeapBytes/1024, x.StackBytes/1024, x.FDs, x.Goroutines, x.DovecotKiB, x.SlabKiB)
	if s.KernelPerSocketB > 0 {
		fmt.Fprintf(w, "kernel memory per idle loopback TCP socket (socket, inode, file, dentry, epoll entry; %d connected pairs): %.1f KiB; the gateway holds two per session\n", s.CalibrationPairs, s.KernelPerSocketB/1024)
	}
	a := s.At100k
	fmt.Fprintf(w, "at 100,000 sessions: gateway PSS %.0f MiB, %.0f fds, %.0f goroutines, kernel (its sockets) %.0f MiB\n", a.PSSMiB, a.FDs, a.Goroutines, a.KernelMiB)
	for _, l := range s.Limits {
		fmt.Fprintf(w, "  - %s\n", l)
	}
}
