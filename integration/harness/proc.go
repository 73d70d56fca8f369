// SPDX-License-Identifier: Apache-2.0

package harness

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// What a server costs, read from /proc: its processes, their memory, open
// files and CPU time. A server of several processes (Dovecot's master and
// its login, auth and director processes; nginx's master and workers) is
// measured over its whole tree, so that it is compared fairly with a
// gateway of one process.

// ClockTicks is the unit of the CPU times in /proc/PID/stat (USER_HZ, 100
// on every Linux Go runs on).
const ClockTicks = 100

// ProcessTree returns pid and every live descendant of it.
func ProcessTree(pid int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f, err := statFields(p); err == nil {
			ppid, _ := strconv.Atoi(f[1])
			children[ppid] = append(children[ppid], p)
		}
	}
	tree := []int{pid}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree
}

// statFields returns the fields of /proc/PID/stat after the command name
// (which may hold spaces and parentheses): [0] is the state, [1] the parent.
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return nil, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	return f, nil
}

// CPUTicks sums the user and system CPU time of pids, in ClockTicks, with
// the time of the children each has reaped: a Dovecot login process that
// ended during a measurement still counts on its master. Processes that
// are gone are skipped.
func CPUTicks(pids ...int) int64 {
	var n int64
	for _, pid := range pids {
		f, err := statFields(pid)
		if err != nil {
			continue
		}
		// utime, stime, cutime, cstime: fields 14-17 of stat(5).
		for _, s := range f[11:15] {
			v, _ := strconv.ParseInt(s, 10, 64)
			n += v
		}
	}
	return n
}

// PSSKiB sums the proportional set size of pids (smaps_rollup): memory
// shared between the processes of one server is counted once, split
// among them, so the sum is what the server costs the machine.
func PSSKiB(pids ...int) (int64, error) {
	var n int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			if os.IsNotExist(err) {
				continue // ended since the tree was read
			}
			return 0, err
		}
		found := false
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "Pss:"); ok {
				v, err := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
				if err != nil {
					return 0, fmt.Errorf("/proc/%d/smaps_rollup: %w", pid, err)
				}
				n += v
				found = true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("/proc/%d/smaps_rollup: no Pss line", pid)
		}
	}
	return n, nil
}

// FDCount counts the open file descriptors of pids.
func FDCount(pids ...int) (int, error) {
	n := 0
	for _, pid := range pids {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return 0, err
		}
		n += len(ents)
	}
	return n, nil
}

// Pid is the Dovecot master's process id; its login, auth and mail
// processes are its children (ProcessTree finds them).
func (d *Dovecot) Pid() int { return d.cmd.Process.Pid }

// groupAlive reports whether a process of process group pgid is still
// running (zombies, whose descriptors are closed already, do not count).
func groupAlive(pgid int) bool {
	want := strconv.Itoa(pgid)
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f, err := statFields(p); err == nil && f[0] != "Z" && f[2] == want {
			return true
		}
	}
	return false
}

// waitGroupGone waits until no process of group pgid runs, and kills the
// group after timeout. Dovecot's master exits before its children (a
// thousand imap processes take a moment), which still hold its listening
// sockets: a Dovecot started again on the same directory meanwhile finds
// them answering and refuses ("Socket already exists").
func waitGroupGone(pgid int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for groupAlive(pgid) {
		if time.Now().After(deadline) {
			syscall.Kill(-pgid, syscall.SIGKILL)
			deadline = time.Now().Add(timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
