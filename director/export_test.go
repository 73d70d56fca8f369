// SPDX-License-Identifier: Apache-2.0

package director

import "context"

// RefreshForTest runs one refresh round, as Run's ticker would.
func RefreshForTest(ctx context.Context, d *Director) { d.refreshActive(ctx) }
