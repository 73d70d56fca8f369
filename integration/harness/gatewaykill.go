// SPDX-License-Identifier: Apache-2.0

package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Kill ends the gateway at once (SIGKILL), as a crash or the OOM killer
// would: no listener closes cleanly, no lease is revoked, the kernel
// closes its connections. It returns once the process is gone.
func (g *Gateway) Kill() {
	select {
	case <-g.exited:
		return
	default:
	}
	g.cmd.Process.Kill()
	<-g.exited
}

// Exited says whether the gateway's process has ended.
func (g *Gateway) Exited() bool {
	select {
	case <-g.exited:
		return true
	default:
		return false
	}
}

// Restart starts the gateway again with the configuration file it was
// last started with (same ports, same data directory) after it ended
// (Kill or Stop; a running one is stopped first), and waits until waitAddr
// accepts connections. The log file is appended to, so that it keeps
// every life of the gateway. It returns the new Gateway; g stays ended.
func (g *Gateway) Restart(waitAddr string) (*Gateway, error) {
	g.Stop()
	yaml, err := os.ReadFile(g.Conf)
	if err != nil {
		return nil, err
	}
	// StartGateway truncates the log: keep the earlier lives.
	old, _ := os.ReadFile(g.LogPath)
	prev := g.LogPath + ".prev"
	if f, err := os.OpenFile(prev, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
		f.Write(old)
		fmt.Fprintf(f, "--- harness: gateway ended, restarting at %s\n", time.Now().Format(time.RFC3339Nano))
		f.Close()
	}
	return StartGateway(g.Bin, filepath.Dir(g.Conf), string(yaml), waitAddr)
}

// EarlierLogs returns the logs of the gateway's earlier lives (before
// Restart), oldest first.
func (g *Gateway) EarlierLogs() string {
	b, _ := os.ReadFile(g.LogPath + ".prev")
	return string(b)
}
