// SPDX-License-Identifier: Apache-2.0

// Package statuspage serves the operator's live status page: one HTML
// page, its script and its style sheet, embedded in the binary. The page
// reads the admin API from the browser (api/v1/status, api/v1/activity,
// relative to where it is served), so this package holds no data and
// imports no package of ours; the admin listener mounts it behind its
// token guard, like everything that listener serves.
//
// The page marks what tests and operators' scripts may rely on: each
// backend is an element with data-host="IP" and data-state="up", "down"
// or "drained", holding an element of class "users" (the assigned users)
// and one of class "sessions" (the sessions on every gateway), both
// plain decimal numbers; each gateway is an element with
// data-gateway="NAME"; <body> gets data-loaded="true" once the first
// status has been shown.
package statuspage
