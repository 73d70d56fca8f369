// SPDX-License-Identifier: Apache-2.0

package harness

import (
	"os"
	"os/exec"
	"testing"
)

// RequireTools skips the test when one of the programs is not on the PATH,
// and fails it instead when the environment variable CI is set: CI must
// never pass by skipping. The integration tests and the harness's own
// starters (StartEtcd) apply it alike.
func RequireTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed, and CI is set: integration tests must run (install it, see .ci/run)", tool)
			}
			t.Skipf("%s is not installed; skipping integration test (set CI=1 to make this a failure)", tool)
		}
	}
}
