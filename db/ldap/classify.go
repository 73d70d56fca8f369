// SPDX-License-Identifier: Apache-2.0

package ldap

import (
	"errors"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/maildirector/maildirector/auth"
)

// classify turns a directory error into a classified failure: only
// answers the directory really gave become negative statuses elsewhere;
// everything here is an error, temporary unless it is clearly our own
// configuration.
func classify(op string, err error) error {
	var sb *serviceBindError
	if errors.As(err, &sb) && goldap.IsErrorWithCode(err, goldap.LDAPResultInvalidCredentials) {
		return auth.Internal(op, err) // wrong dn/dnpass in the configuration
	}
	if goldap.IsErrorAnyOf(err,
		goldap.LDAPResultInvalidDNSyntax,
		goldap.LDAPResultInsufficientAccessRights,
		goldap.LDAPResultConfidentialityRequired,
		goldap.LDAPResultStrongAuthRequired,
		goldap.LDAPResultInappropriateAuthentication,
		goldap.LDAPResultFilterError,
		goldap.LDAPResultUndefinedAttributeType,
		goldap.LDAPResultProtocolError) {
		return auth.Internal(op, err)
	}
	// Network errors, server down, busy, unavailable, time limits, context
	// deadlines: the same lookup may work later.
	return auth.Temporary(op, err)
}
