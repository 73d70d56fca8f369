// SPDX-License-Identifier: Apache-2.0

package mechs

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
)

// channelBinding returns the connection's channel binding data of type
// name (RFC 5056 names): "tls-exporter" (RFC 9266: 32 bytes of exported
// keying material, TLS 1.3, or TLS 1.2 with Extended Master Secret, which
// Go's exporter insists on) or "tls-unique" (RFC 5929: the first Finished
// message, TLS 1.2 only; RFC 9266 section 3 leaves it undefined for 1.3).
// or "tls-server-end-point" (RFC 5929 4.1: a hash of the server's
// certificate, serverCert, for clients whose TLS library cannot export
// keying material). ok is false for other types and where the type is not
// available.
func channelBinding(cs *tls.ConnectionState, serverCert []byte, name string) (data []byte, ok bool) {
	if cs == nil || !cs.HandshakeComplete {
		return nil, false
	}
	switch name {
	case "tls-server-end-point":
		return serverEndPoint(serverCert)
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

// serverEndPoint hashes a certificate as RFC 5929 4.1 says: with its
// signature's hash, except that MD5 and SHA-1 become SHA-256. A signature
// without a separate hash (Ed25519) has no defined binding.
func serverEndPoint(der []byte) ([]byte, bool) {
	if len(der) == 0 {
		return nil, false
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, false
	}
	var h crypto.Hash
	switch cert.SignatureAlgorithm {
	case x509.MD5WithRSA, x509.SHA1WithRSA, x509.ECDSAWithSHA1, x509.DSAWithSHA1,
		x509.SHA256WithRSA, x509.SHA256WithRSAPSS, x509.ECDSAWithSHA256, x509.DSAWithSHA256:
		h = crypto.SHA256
	case x509.SHA384WithRSA, x509.SHA384WithRSAPSS, x509.ECDSAWithSHA384:
		h = crypto.SHA384
	case x509.SHA512WithRSA, x509.SHA512WithRSAPSS, x509.ECDSAWithSHA512:
		h = crypto.SHA512
	default:
		return nil, false
	}
	d := h.New()
	d.Write(der)
	return d.Sum(nil), true
}
