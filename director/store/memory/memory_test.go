// SPDX-License-Identifier: Apache-2.0

package memory_test

import (
	"sync"
	"testing"

	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/director/store/memory"
	"github.com/maildirector/maildirector/director/storetest"
)

func TestContract(t *testing.T) {
	var mu sync.Mutex
	stores := map[string]*memory.Store{}
	storetest.Run(t, storetest.Backend{
		// One store per subtest, shared by its "gateways".
		Open: func(t *testing.T) director.Store {
			mu.Lock()
			defer mu.Unlock()
			if stores[t.Name()] == nil {
				stores[t.Name()] = memory.New()
			}
			return stores[t.Name()]
		},
	})
}
