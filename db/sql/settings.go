// SPDX-License-Identifier: Apache-2.0

package sql

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Settings are the dovecot-sql.conf.ext keys, with Dovecot 2.3's defaults
// (src/auth/db-sql.c, src/lib-sql/driver-mysql.c).
type Settings struct {
	Hosts         []*mysql.Config // one per host= in connect, tried in order
	MaxConns      int
	PasswordQuery string
	UserQuery     string
	IterateQuery  string
	// DefaultPassScheme applies to stored passwords without {SCHEME}.
	DefaultPassScheme string
	Ignored           []string
}

// ParseSettings reads the keys of a dovecot-sql.conf.ext file (or the
// same keys inline).
func ParseSettings(kv map[string]string) (*Settings, error) {
	s := &Settings{DefaultPassScheme: "MD5", MaxConns: 5}
	var errs []error
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := kv[k]
		switch k {
		case "driver":
			if v != "mysql" {
				errs = append(errs, fmt.Errorf("driver: %q is not supported (only mysql, which serves MariaDB too)", v))
			}
		case "connect":
			if err := s.parseConnect(v); err != nil {
				errs = append(errs, fmt.Errorf("connect: %w", err))
			}
		case "password_query":
			s.PasswordQuery = v
		case "user_query":
			s.UserQuery = v
		case "iterate_query":
			s.IterateQuery = v
		case "default_pass_scheme":
			s.DefaultPassScheme = v
		case "update_query":
			s.Ignored = append(s.Ignored, k+" (credentials are never written back)")
		case "userdb_warning_disable":
			s.Ignored = append(s.Ignored, k+" (Dovecot-internal warning switch)")
		default:
			errs = append(errs, fmt.Errorf("%s: unknown setting", k))
		}
	}
	if _, ok := kv["driver"]; !ok {
		errs = append(errs, errors.New("driver: not set"))
	}
	if len(s.Hosts) == 0 {
		errs = append(errs, errors.New("connect: no host= given"))
	}
	return s, errors.Join(errs...)
}

// parseConnect reads Dovecot's MySQL connect string: space-separated
// key=value pairs (values may be double-quoted), host= repeated for
// failover.
func (s *Settings) parseConnect(connect string) error {
	kv, hosts, err := splitConnect(connect)
	if err != nil {
		return err
	}
	base := mysql.NewConfig()
	base.Timeout, base.ReadTimeout, base.WriteTimeout = 5*time.Second, 30*time.Second, 30*time.Second
	port := "3306"
	var tlsCfg *tls.Config
	var errs []error
	for k, v := range kv {
		switch k {
		case "dbname":
			base.DBName = v
		case "user":
			base.User = v
		case "password":
			base.Passwd = v
		case "port":
			if _, err := strconv.Atoi(v); err != nil {
				errs = append(errs, fmt.Errorf("port %q", v))
			}
			port = v
		case "connect_timeout", "read_timeout", "write_timeout":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				errs = append(errs, fmt.Errorf("%s: want seconds, not %q", k, v))
				continue
			}
			d := time.Duration(n) * time.Second
			switch k {
			case "connect_timeout":
				base.Timeout = d
			case "read_timeout":
				base.ReadTimeout = d
			default:
				base.WriteTimeout = d
			}
		case "maxconns":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				errs = append(errs, fmt.Errorf("maxconns %q", v))
				continue
			}
			s.MaxConns = n
		case "ssl_ca", "ssl_ca_path", "ssl_cert", "ssl_key", "ssl_verify_server_cert", "ssl_cipher":
			if tlsCfg == nil {
				tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}
			}
			if err := applyTLS(tlsCfg, kv, k, v); err != nil {
				errs = append(errs, err)
			}
		case "client_flags", "option_file", "option_group", "hostaddr", "character_set":
			s.Ignored = append(s.Ignored, "connect "+k)
		default:
			errs = append(errs, fmt.Errorf("unknown connect key %q", k))
		}
	}
	for _, h := range hosts {
		c := base.Clone()
		c.TLS = tlsCfg
		if strings.HasPrefix(h, "/") {
			c.Net, c.Addr = "unix", h
		} else {
			c.Net, c.Addr = "tcp", h+":"+port
			if strings.Contains(h, ":") && !strings.HasPrefix(h, "[") {
				c.Addr = "[" + h + "]:" + port
			}
		}
		s.Hosts = append(s.Hosts, c)
	}
	return errors.Join(errs...)
}

func applyTLS(tc *tls.Config, kv map[string]string, k, v string) error {
	switch k {
	case "ssl_verify_server_cert":
		tc.InsecureSkipVerify = !(v == "yes" || v == "1")
	case "ssl_ca", "ssl_ca_path":
		files := []string{v}
		if k == "ssl_ca_path" {
			files, _ = filepath.Glob(filepath.Join(v, "*"))
		}
		if tc.RootCAs == nil {
			tc.RootCAs = x509.NewCertPool()
		}
		for _, f := range files {
			pem, err := os.ReadFile(f)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			tc.RootCAs.AppendCertsFromPEM(pem)
		}
	case "ssl_cert":
		cert, err := tls.LoadX509KeyPair(v, kv["ssl_key"])
		if err != nil {
			return fmt.Errorf("ssl_cert: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return nil
}

// splitConnect splits "host=a host=b dbname=mail password=\"x y\"".
func splitConnect(s string) (map[string]string, []string, error) {
	kv := map[string]string{}
	var hosts []string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, nil, fmt.Errorf("expected key=value at %q", s)
		}
		key := s[:eq]
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return nil, nil, fmt.Errorf("unterminated quote in %s", key)
			}
			val, s = s[1:end+1], s[end+2:]
		} else {
			end := strings.IndexAny(s, " \t")
			if end < 0 {
				end = len(s)
			}
			val, s = s[:end], s[end:]
		}
		if key == "host" {
			hosts = append(hosts, val)
			continue
		}
		kv[key] = val
	}
	return kv, hosts, nil
}
