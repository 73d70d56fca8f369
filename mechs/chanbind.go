// SPDX-License-Identifier: Apache-2.0

package mechs

import "crypto/tls"

// channelBinding returns the connection's channel binding data of type
// name (RFC 5056 names): "tls-exporter" (RFC 9266: 32 bytes of exported
// keying material, TLS 1.3, or TLS 1.2 with Extended Master Secret, which
// Go's exporter insists on) or "tls-unique" (RFC 5929: the first Finished
// message, TLS 1.2 only; RFC 9266 section 3 leaves it undefined for 1.3).
// ok is false for other types and where the type is not available.
func channelBinding(cs *tls.ConnectionState, name string) (data []byte, ok bool) {
	if cs == nil || !cs.HandshakeComplete {
		return nil, false
	}
	switch name {
	case "tls-exporter":
		defer func() {
			// A ConnectionState not made by a handshake has no
			// exporter to call.
			if recover() != nil {
				data, ok = nil, false
			}
		}()
		b, err := cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
		return b, err == nil
	case "tls-unique":
		if cs.Version >= tls.VersionTLS13 || len(cs.TLSUnique) == 0 {
			return nil, false
		}
		return cs.TLSUnique, true
	}
	return nil, false
}
