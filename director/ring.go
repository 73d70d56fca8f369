// SPDX-License-Identifier: Apache-2.0

package director

import (
	"crypto/md5"
	"encoding/binary"
	"slices"
	"strconv"
)

// Ring is Dovecot 2.3's consistent-hashing ring for one backend group
// (src/director/mail-host.c): every usable host adds VHosts points, point i
// being the first four bytes (big-endian) of MD5("<ip>-<i>"); a user takes
// the host of the first point at or after its hash, wrapping around.
// Reproducing it exactly keeps every user on the backend Dovecot's Director
// would have chosen on the day a site switches over.
type Ring struct {
	points []point
}

type point struct {
	hash uint32
	ip   string
}

// NewRing builds the ring of hosts. Down hosts and hosts with no vhosts add
// no points: they take no new users.
func NewRing(hosts []Host) *Ring {
	n := 0
	for _, h := range hosts {
		if !h.Down {
			n += h.VHosts
		}
	}
	r := &Ring{points: make([]point, 0, n)}
	buf := make([]byte, 0, 64)
	for _, h := range hosts {
		if h.Down {
			continue
		}
		for i := 0; i < h.VHosts; i++ {
			buf = append(buf[:0], h.IP...)
			buf = append(buf, '-')
			buf = strconv.AppendInt(buf, int64(i), 10)
			sum := md5.Sum(buf)
			r.points = append(r.points, point{hash: binary.BigEndian.Uint32(sum[:4]), ip: h.IP})
		}
	}
	// Equal hashes are ordered by IP string so that the ring does not depend
	// on the order hosts were listed in.
	slices.SortFunc(r.points, func(a, b point) int {
		if a.hash != b.hash {
			if a.hash < b.hash {
				return -1
			}
			return 1
		}
		switch {
		case a.ip < b.ip:
			return -1
		case a.ip > b.ip:
			return 1
		}
		return 0
	})
	return r
}

// Lookup returns the IP of the host that owns hash; ok is false when the
// ring has no points (no usable host).
func (r *Ring) Lookup(hash uint32) (ip string, ok bool) {
	if len(r.points) == 0 {
		return "", false
	}
	i, _ := slices.BinarySearchFunc(r.points, hash, func(p point, h uint32) int {
		switch {
		case p.hash < h:
			return -1
		case p.hash > h:
			return 1
		}
		return 0
	})
	if i == len(r.points) {
		i = 0
	}
	return r.points[i].ip, true
}

// UserHash is Dovecot 2.3's user hash (src/lib-mail/mail-user-hash.c):
// the first four bytes (big-endian) of MD5 of the expanded
// director_username_hash. (Some Dovecot versions turn a hash of 0 into 1;
// 2.3's release branch does not, and the ring's answer would only differ
// if a point hashed to exactly 0 as well.)
func UserHash(key string) uint32 {
	sum := md5.Sum([]byte(key))
	return binary.BigEndian.Uint32(sum[:4])
}
