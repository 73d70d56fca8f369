// SPDX-License-Identifier: Apache-2.0

package passdb

import (
	"container/list"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"sync"
	"time"

	"github.com/maildirector/maildirector/auth"
)

// Cache remembers passdb answers, as Dovecot's auth cache does: positive
// answers for TTL, "unknown user" for NegativeTTL, least recently used
// entries evicted beyond MaxBytes. While a database cannot answer, an
// expired entry is still used ("Falling back to expired data from cache").
// It is safe for concurrent use.
type Cache struct {
	ttl, negTTL time.Duration
	maxBytes    int
	now         func() time.Time

	mu    sync.Mutex
	items map[string]*list.Element
	lru   *list.List // front: most recently used
	size  int
	// hits and misses count lookups answered by a fresh entry or not
	// (guarded by mu).
	hits, misses uint64
}

// Stats returns how many lookups a fresh entry answered (hits) and how
// many went to the database (misses), and the entries held now.
func (c *Cache) Stats() (hits, misses uint64, entries int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.misses, len(c.items)
}

type cacheItem struct {
	key    string
	res    auth.Result
	stored time.Time
	size   int
	// verified: the last password checked against this entry was right,
	// so a mismatch now may mean the password changed: ask the database.
	verified bool
	// bindHash holds a salted hash of the password an auth_bind database
	// accepted, so that a cached bind can be checked without the directory.
	bindSalt, bindHash []byte
}

// NewCache returns a cache; now may be nil (time.Now).
func NewCache(maxBytes int, ttl, negativeTTL time.Duration, now func() time.Time) *Cache {
	if now == nil {
		now = time.Now
	}
	return &Cache{ttl: ttl, negTTL: negativeTTL, maxBytes: maxBytes, now: now,
		items: map[string]*list.Element{}, lru: list.New()}
}

// get returns a copy of key's entry and whether it is still fresh.
func (c *Cache) get(key string) (it cacheItem, fresh, found bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		c.misses++
		return cacheItem{}, false, false
	}
	c.lru.MoveToFront(el)
	it = *el.Value.(*cacheItem)
	it.res.Fields = it.res.Fields.Clone()
	ttl := c.ttl
	if it.res.Status != auth.StatusOK {
		ttl = c.negTTL
	}
	fresh = c.now().Sub(it.stored) < ttl
	if fresh {
		c.hits++
	} else {
		c.misses++
	}
	return it, fresh, true
}

// put stores a lookup answer (OK or unknown user).
func (c *Cache) put(key string, res auth.Result) {
	it := &cacheItem{key: key, res: res, stored: c.now()}
	it.res.Fields = res.Fields.Clone()
	c.store(it)
}

// putBind stores the fields of a successful auth_bind with a salted hash
// of the password that worked.
func (c *Cache) putBind(key string, res auth.Result, password string) {
	it := &cacheItem{key: key, res: res, stored: c.now(), verified: true}
	it.res.Fields = res.Fields.Clone()
	it.bindSalt = make([]byte, 16)
	rand.Read(it.bindSalt)
	it.bindHash = bindHash(it.bindSalt, password)
	c.store(it)
}

func bindHash(salt []byte, password string) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(password))
	return h.Sum(nil)
}

// bindMatches reports whether password is the one cached for a bind.
func (it *cacheItem) bindMatches(password string) bool {
	return it.bindHash != nil && subtle.ConstantTimeCompare(bindHash(it.bindSalt, password), it.bindHash) == 1
}

func (c *Cache) store(it *cacheItem) {
	it.size = len(it.key) + 64
	for k, v := range it.res.Fields {
		it.size += len(k) + len(v) + 16
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[it.key]; ok {
		c.size -= el.Value.(*cacheItem).size
		c.lru.Remove(el)
	}
	c.items[it.key] = c.lru.PushFront(it)
	c.size += it.size
	for c.size > c.maxBytes && c.lru.Len() > 0 {
		old := c.lru.Back()
		c.lru.Remove(old)
		oi := old.Value.(*cacheItem)
		delete(c.items, oi.key)
		c.size -= oi.size
	}
}

// markVerified records that a password just matched key's entry.
func (c *Cache) markVerified(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		el.Value.(*cacheItem).verified = true
	}
}

// Flush forgets everything and returns how many entries there were
// (SIGHUP, or an operator's command).
func (c *Cache) Flush() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.items)
	c.items = map[string]*list.Element{}
	c.lru.Init()
	c.size = 0
	return n
}

// Len returns the number of cached entries.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}
