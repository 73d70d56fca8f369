// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestStatusPage opens the admin listener's status page in headless
// Chromium, as an operator's browser would, and checks what it shows
// against `maildirector director status`: each backend's state and
// users, and a backend taken down with the CLI turning "down" on the
// page within a few polls.
func TestStatusPage(t *testing.T) {
	execPath := requireChromium(t)
	const ip1, ip2 = "127.0.0.91", "127.0.0.92"
	a := startAdminEnv(t, []string{ip1, ip2})
	checkStatusPage(t, a, "http://"+a.api+"/", execPath, ip1, ip2)
}

// requireChromium returns Debian's /usr/bin/chromium, or "" when another
// browser chromedp finds by itself is on the PATH; with none, the test
// skips (fails under CI).
func requireChromium(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell", "headless_shell"} {
		if _, err := exec.LookPath(name); err == nil {
			return ""
		}
	}
	requireTools(t, "chromium")
	return ""
}

// pageHost is a backend as the page shows it, read through its hooks.
type pageHost struct {
	State    string `json:"state"`
	Users    string `json:"users"`
	Sessions string `json:"sessions"`
}

const readPageHosts = `Object.fromEntries(Array.from(document.querySelectorAll('[data-host]')).map(e => [e.dataset.host, {
	state: e.dataset.state || '',
	users: (e.querySelector('.users') || {}).textContent || '',
	sessions: (e.querySelector('.sessions') || {}).textContent || '',
}]))`

// cliHost is a backend as `maildirector director status --json` reports it.
type cliHost struct {
	state    string
	users    int
	sessions int
}

func cliHosts(t *testing.T, bin, conf string) map[string]cliHost {
	t.Helper()
	out, err := exec.Command(bin, "director", "status", "-c", conf, "--json").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("director status: %v: %s", err, ee.Stderr)
		}
		t.Fatalf("director status: %v", err)
	}
	var status struct {
		Hosts []struct {
			IP       string         `json:"ip"`
			Down     bool           `json:"down"`
			Drained  bool           `json:"drained"`
			Users    int            `json:"users"`
			Sessions map[string]int `json:"sessions"`
		} `json:"hosts"`
	}
	if err := json.Unmarshal(out, &status); err != nil {
		t.Fatalf("director status --json: %v\n%s", err, out)
	}
	hosts := map[string]cliHost{}
	for _, h := range status.Hosts {
		c := cliHost{state: "up", users: h.Users}
		switch {
		case h.Down:
			c.state = "down"
		case h.Drained:
			c.state = "drained"
		}
		for _, n := range h.Sessions {
			c.sessions += n
		}
		hosts[h.IP] = c
	}
	return hosts
}

// pageAgrees says how the page differs from the CLI on ips ("" when not).
func pageAgrees(page map[string]pageHost, cli map[string]cliHost, ips ...string) string {
	var diffs []string
	for _, ip := range ips {
		p, c := page[ip], cli[ip]
		if p.State != c.state || p.Users != strconv.Itoa(c.users) || p.Sessions != strconv.Itoa(c.sessions) {
			diffs = append(diffs, fmt.Sprintf("%s: page %s, %s users, %s sessions; CLI %s, %d users, %d sessions",
				ip, p.State, p.Users, p.Sessions, c.state, c.users, c.sessions))
		}
	}
	return strings.Join(diffs, "; ")
}

// startChromium runs a headless browser for the test, closed with it.
func startChromium(t *testing.T, execPath string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.Headless,
		chromedp.NoSandbox, // the tests run as root, where Chromium's sandbox refuses to start
		chromedp.DisableGPU,
		chromedp.UserDataDir(shortTempDir(t)),
		chromedp.WindowSize(1280, 900),
	)
	if execPath != "" {
		opts = append(opts, chromedp.ExecPath(execPath))
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first Run starts the browser and ties it to ctx, which has no
	// deadline: later calls bound themselves.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return ctx
}

// artifactPath is where a test leaves a file for people to look at:
// $MAILDIRECTOR_ARTIFACTS, or artifacts/ at the top of the repository.
func artifactPath(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("MAILDIRECTOR_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "artifacts") // go test runs in integration/
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name)
}

func checkStatusPage(t *testing.T, a *adminEnv, pageURL, execPath, ip1, ip2 string) {
	bin, conf := gatewayBinary(t), a.gw.Conf

	// The page is behind the token like the API, and served with it.
	client := &http.Client{Timeout: 10 * time.Second}
	if resp, err := client.Get(pageURL); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET %s without a token: %d, want 401", pageURL, resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, pageURL, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("GET %s with the token: %d %q, want 200 and the status page (statuspage.Handler mounted on the admin listener)", pageURL, resp.StatusCode, ct)
	}

	// Twelve users with their sessions held, on both backends.
	perBackend := map[string]int{}
	for i := range 12 {
		c := adminLogin(t, a.env, userName(i))
		t.Cleanup(c.close)
		perBackend[a.ringBackend(userName(i))]++
	}
	if perBackend[ip1] == 0 || perBackend[ip2] == 0 {
		t.Fatalf("the ring puts the users %v: the test needs both backends used", perBackend)
	}
	var cli map[string]cliHost
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		cli = cliHosts(t, bin, conf)
		if cli[ip1].users+cli[ip2].users == 12 && cli[ip1].sessions+cli[ip2].sessions == 12 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("director status after 12 logins: %+v, want 12 users and 12 sessions", cli)
		}
	}
	t.Logf("director status: %s %+v, %s %+v", ip1, cli[ip1], ip2, cli[ip2])

	ctx := startChromium(t, execPath)
	var (
		mu      sync.Mutex
		console []chromedp.ConsoleMessage
	)
	cctx, stopConsole := context.WithCancel(ctx)
	defer stopConsole()
	messages := chromedp.Console(cctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			mu.Lock()
			console = append(console, m)
			mu.Unlock()
		}
	}()

	// Screenshots whatever happens: on a failure they show what the
	// browser saw.
	defer func() {
		shot := func(name string) {
			sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Errorf("screenshot: %v", err)
				return
			}
			path := artifactPath(t, name)
			if err := os.WriteFile(path, png, 0o644); err != nil {
				t.Error(err)
				return
			}
			t.Logf("status page screenshot: %s", path)
		}
		shot("statuspage.png")

		// Readable on a phone: nothing wider than its screen.
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		if err := chromedp.Do(pctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2))); err != nil {
			t.Errorf("phone viewport: %v", err)
			return
		}
		time.Sleep(300 * time.Millisecond) // one layout
		if w, err := chromedp.Run(pctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); err != nil {
			t.Error(err)
		} else if w > 390 {
			t.Errorf("on a 390 px wide phone the page is %d px wide", w)
		}
		shot("statuspage-phone.png")
	}()

	// The token on every request of the page, as a browser that was given
	// it once sends it with the page's own fetches.
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"Authorization": "Bearer " + adminToken},
	}); err != nil {
		t.Fatal(err)
	}
	lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(lctx, chromedp.Navigate(pageURL), chromedp.WaitReady(chromedp.CSS(`body[data-loaded="true"]`))); err != nil {
		t.Fatalf("the page never showed a status (body[data-loaded=true]): %v", err)
	}

	// waitPage polls the page until ok accepts what it shows.
	waitPage := func(within time.Duration, what string, ok func(map[string]pageHost) string) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			page, err := chromedp.Run(rctx, chromedp.Evaluate[map[string]pageHost](readPageHosts))
			cancel()
			if err != nil {
				t.Fatalf("reading the page: %v", err)
			}
			diff := ok(page)
			if diff == "" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v: %s", what, within, diff)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}

	waitPage(10*time.Second, "the page shows what director status says", func(page map[string]pageHost) string {
		return pageAgrees(page, cliHosts(t, bin, conf), ip1, ip2)
	})
	gateways, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('[data-gateway]')).map(e => e.dataset.gateway)`))
	if err != nil || len(gateways) != 1 || gateways[0] == "" {
		t.Errorf("gateways on the page: %q %v, want this one", gateways, err)
	}

	if out, err := directorCLI(bin, conf, "down", ip1); err != nil {
		t.Fatalf("director down %s: %v\n%s", ip1, err, out)
	}
	waitPage(20*time.Second, "the page shows "+ip1+" down", func(page map[string]pageHost) string {
		if page[ip1].State != "down" || page[ip2].State != "up" {
			return fmt.Sprintf("%s %q, %s %q", ip1, page[ip1].State, ip2, page[ip2].State)
		}
		return ""
	})
	waitPage(10*time.Second, "after the down, the page shows what director status says", func(page map[string]pageHost) string {
		return pageAgrees(page, cliHosts(t, bin, conf), ip1, ip2)
	})

	// What a browser refuses (a CSP violation) or a script error would
	// not fail a fetch: the console tells.
	stopConsole()
	mu.Lock()
	defer mu.Unlock()
	for _, m := range console {
		if m.Type == chromedp.ConsoleException || strings.Contains(m.Text, "Content Security Policy") {
			t.Errorf("browser console: %s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line+1)
		}
	}
}
