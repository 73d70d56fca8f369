// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package main

import (
	"context"
	"log/slog"
)

// notify and watchdog: systemd is Linux only.
func notify(*slog.Logger, string)            {}
func watchdog(context.Context, *slog.Logger) {}
