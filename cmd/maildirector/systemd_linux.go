// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// notify tells systemd (Type=notify) how the service is; outside systemd
// ($NOTIFY_SOCKET unset) it does nothing.
func notify(log *slog.Logger, state string) {
	if state == daemon.SdNotifyReloading {
		// systemd 253+ wants the monotonic time with RELOADING=1 (for
		// Type=notify-reload); older ones ignore the extra field.
		var ts unix.Timespec
		if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) == nil {
			state += "\nMONOTONIC_USEC=" + strconv.FormatInt(ts.Nano()/1000, 10)
		}
	}
	if _, err := daemon.SdNotify(false, state); err != nil {
		log.Warn("systemd notification failed", "state", state, "reason", err)
	}
}

// watchdog pings systemd's watchdog (WatchdogSec=) at half its interval
// while the process runs; without a watchdog it returns at once.
func watchdog(ctx context.Context, log *slog.Logger) {
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil || every <= 0 {
		return
	}
	t := time.NewTicker(every / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			notify(log, daemon.SdNotifyWatchdog)
		}
	}
}
