// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestLMTPSafety: 1,000 deliveries, each to 3 recipients spread over two
// backends, 8 at a time; one backend is killed (SIGKILL) in the middle.
// Afterwards: every recipient that got 250 has the message in its maildir,
// exactly once; every recipient that did not got a 4xx (never a 5xx, never
// silence); no message is anywhere twice.
func TestLMTPSafety(t *testing.T) {
	const deliveries, workers, nUsers = 1000, 8, 30
	e := startBackends(t, []string{"127.0.0.11", "127.0.0.12"}, nUsers)
	e.backendTimeout = "5s"
	e.startLMTPGateway(t, staticPassdb("proxy=y nopassword=y"), "lmtp: {timeout: 10s}\n")
	victim := e.backendByIP("127.0.0.12")

	type outcome struct {
		rcpt, id, rcptReply, dataReply string
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
		done     atomic.Int64
		killOnce sync.Once
		wg       sync.WaitGroup
	)
	jobs := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				rcpts := []string{userName(i % nUsers), userName((i + 7) % nUsers), userName((i + 13) % nUsers)}
				id := fmt.Sprintf("safety-%d@test", i)
				c := dialLMTP(t, e.gwAddr, "")
				c.cmd("LHLO mta")
				rr, dr := c.deliver("s@example.org", rcpts, message(id, strings.Repeat("body line\r\n", 50)))
				c.cmd("QUIT")
				c.close()
				mu.Lock()
				k := 0
				for j, r := range rcpts {
					o := outcome{rcpt: r, id: id, rcptReply: rr[j]}
					if strings.HasPrefix(rr[j], "250") {
						o.dataReply = dr[k]
						k++
					}
					outcomes = append(outcomes, o)
				}
				mu.Unlock()
				if done.Add(1) == deliveries/2 {
					killOnce.Do(victim.Kill)
				}
			}
		}()
	}
	for i := 0; i < deliveries; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()

	// Index every message in every maildir once.
	count := map[string]int{} // user/message-id -> copies
	for u := 0; u < nUsers; u++ {
		user := userName(u)
		for _, sub := range []string{"new", "cur", "tmp"} {
			files, _ := filepath.Glob(filepath.Join(e.dir, "mail", user, "Maildir", sub, "*"))
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					continue
				}
				s := string(data)
				if i := strings.Index(s, "Message-ID: <"); i >= 0 {
					id := s[i+len("Message-ID: <"):]
					id = id[:strings.IndexByte(id, '>')]
					count[user+"/"+id]++
				}
			}
		}
	}
	var ok250, temp int
	for _, o := range outcomes {
		got := count[o.rcpt+"/"+o.id]
		final := o.rcptReply
		if o.dataReply != "" {
			final = o.dataReply
		}
		switch {
		case strings.HasPrefix(final, "250"):
			ok250++
			if got != 1 {
				t.Errorf("%s got 250 for %s but has it %d times", o.rcpt, o.id, got)
			}
		case strings.HasPrefix(final, "4"):
			temp++
			if got > 1 {
				t.Errorf("%s got %q for %s and has it %d times", o.rcpt, final, o.id, got)
			}
		default:
			t.Errorf("%s: %s got %q: neither 250 nor a temporary failure", o.id, o.rcpt, final)
		}
	}
	for k, n := range count {
		if n > 1 {
			t.Errorf("%s delivered %d times", k, n)
		}
	}
	t.Logf("%d recipients: %d delivered (250), %d temporary failures; backend %s killed after %d deliveries",
		len(outcomes), ok250, temp, victim.Opts.IP, deliveries/2)
	if temp == 0 || ok250 < len(outcomes)/2 {
		t.Errorf("the kill did not show: %d temporary failures, %d delivered", temp, ok250)
	}
}
