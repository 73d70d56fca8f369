// SPDX-License-Identifier: Apache-2.0

package memory

import "context"

// Lead runs fn for the election name: a memory store serves one gateway,
// which always leads. It returns when ctx ends (fn's context is ctx).
func (s *Store) Lead(ctx context.Context, name string, fn func(ctx context.Context)) error {
	fn(ctx)
	<-ctx.Done()
	return ctx.Err()
}
