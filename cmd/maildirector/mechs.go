// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/maildirector/maildirector/config"
	"github.com/maildirector/maildirector/mechs"
)

// knownMechanisms is the explicit table of SASL mechanisms (no init()
// registry).
func knownMechanisms() map[string]mechs.Mechanism {
	m := map[string]mechs.Mechanism{}
	for _, x := range []mechs.Mechanism{
		mechs.Plain, mechs.Login, mechs.CRAMMD5, mechs.DigestMD5,
		mechs.SCRAMSHA1, mechs.SCRAMSHA256, mechs.SCRAMSHA1Plus, mechs.SCRAMSHA256Plus,
		mechs.OAuthBearer, mechs.XOAuth2, mechs.External, mechs.Anonymous,
	} {
		m[x.Name] = x
	}
	return m
}

// buildMechanisms reads auth.mechanisms and checks what each mechanism
// needs, so that a configuration that could never log anyone in with it
// fails here, not at the first login.
func buildMechanisms(cfg *config.Config) ([]mechs.Mechanism, error) {
	known := knownMechanisms()
	var out []mechs.Mechanism
	var errs []error
	for _, name := range strings.Fields(strings.ToUpper(cfg.Auth.Mechanisms)) {
		m, ok := known[name]
		if !ok {
			names := make([]string, 0, len(known))
			for k := range known {
				names = append(names, k)
			}
			sort.Strings(names)
			errs = append(errs, fmt.Errorf("auth.mechanisms: unknown mechanism %s (known: %s)", name, strings.Join(names, " ")))
			continue
		}
		if mechs.NeedsMasterUser(m, cfg.Auth.OAuth2.IntrospectionURL != "") && cfg.Backend.MasterUser == "" && !cfg.Backend.MasterFromPassdb {
			errs = append(errs, fmt.Errorf("auth.mechanisms: %s never shows the gateway the client's password, so the backend login must be a master login: "+
				"set backend.master_user and backend.master_password (a master user your backends accept), or backend.master_from_passdb "+
				"if every passdb returns master= and pass= fields", name))
		}
		if m.NeedsTLS && cfg.TLS.Cert == "" {
			errs = append(errs, fmt.Errorf("auth.mechanisms: %s is offered on TLS connections only, and tls.cert is not set", name))
		}
		if name == "EXTERNAL" && cfg.TLS.ClientCAFile == "" {
			errs = append(errs, errors.New("auth.mechanisms: EXTERNAL needs tls.client_ca_file to verify client certificates"))
		}
		out = append(out, m)
	}
	if len(out) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("auth.mechanisms: none"))
	}
	return out, errors.Join(errs...)
}
