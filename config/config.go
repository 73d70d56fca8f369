// SPDX-License-Identifier: Apache-2.0

package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration file. Every key is documented in the
// README's configuration section; keep the two in step.
type Config struct {
	Listen          []Listener `yaml:"listen"`
	TLS             TLS        `yaml:"tls"`
	TrustedNetworks []string   `yaml:"trusted_networks"`
	// AllowPlaintext permits LOGIN / AUTHENTICATE PLAIN on cleartext
	// connections from untrusted networks (Dovecot's
	// disable_plaintext_auth = no).
	AllowPlaintext bool     `yaml:"allow_plaintext"`
	Auth           Auth     `yaml:"auth"`
	Passdb         []Passdb `yaml:"passdb"`
	Userdb         []Userdb `yaml:"userdb"`
	Director       Director `yaml:"director"`
	Backend        Backend  `yaml:"backend"`
	Limits         Limits   `yaml:"limits"`
	Log            Log      `yaml:"log"`
	trusted        []netip.Prefix
}

// Listener is one address the gateway accepts clients on.
type Listener struct {
	// Protocol is "imap", or "imaps" for implicit TLS.
	Protocol string `yaml:"protocol"`
	Address  string `yaml:"address"`
	// TLS is "implicit", "starttls" or "none". Default: implicit for imaps;
	// starttls for imap when a certificate is configured, else none.
	TLS string `yaml:"tls"`
}

// TLS is the gateway's certificate for clients.
type TLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Auth holds Dovecot's auth_* settings.
type Auth struct {
	// UsernameFormat is applied to login names first (auth_username_format,
	// default "%Lu").
	UsernameFormat string `yaml:"username_format"`
	// MasterUserSeparator splits "user<sep>master" logins
	// (auth_master_user_separator; "" = off).
	MasterUserSeparator string `yaml:"master_user_separator"`
	// UsernameChars lists the characters a login name may have
	// (auth_username_chars); unset means Dovecot's default, "" means any.
	UsernameChars *string `yaml:"username_chars"`
	Cache         Cache   `yaml:"cache"`
}

// Cache is the auth cache (auth_cache_size, auth_cache_ttl,
// auth_cache_negative_ttl). Size 0 disables it.
type Cache struct {
	Size        ByteSize       `yaml:"size"`
	TTL         time.Duration  `yaml:"ttl"`
	NegativeTTL *time.Duration `yaml:"negative_ttl"`
}

// Passdb is one password database in the chain, with Dovecot's passdb {}
// settings.
type Passdb struct {
	// Driver is static, ldap or sql.
	Driver string `yaml:"driver"`
	// Args is, as in Dovecot, the static passdb's "key=value ..." string,
	// or the path of a dovecot-ldap.conf.ext / dovecot-sql.conf.ext file.
	Args string `yaml:"args"`
	// Settings are .conf.ext keys given inline (they override the file's).
	Settings map[string]string `yaml:"settings"`
	Name     string            `yaml:"name"`
	// Skip is never, authenticated or unauthenticated.
	Skip string `yaml:"skip"`
	// Result rules: return-ok, return, return-fail, continue,
	// continue-ok, continue-fail.
	ResultSuccess      string `yaml:"result_success"`
	ResultFailure      string `yaml:"result_failure"`
	ResultInternalfail string `yaml:"result_internalfail"`
	// Pass is Dovecot's alias for result_success: continue.
	Pass   bool `yaml:"pass"`
	Deny   bool `yaml:"deny"`
	Master bool `yaml:"master"`
	// Mechanisms limits the passdb to these SASL mechanisms
	// (space-separated; "none" means logins without SASL).
	Mechanisms string `yaml:"mechanisms"`
	// UsernameFilter: space-separated patterns with * and ?, "!" negates.
	UsernameFilter string `yaml:"username_filter"`
	DefaultFields  string `yaml:"default_fields"`
	OverrideFields string `yaml:"override_fields"`
}

// Userdb is one user database in the chain.
type Userdb struct {
	Driver   string            `yaml:"driver"`
	Args     string            `yaml:"args"`
	Settings map[string]string `yaml:"settings"`
	Name     string            `yaml:"name"`
	// Skip is never, found or notfound.
	Skip               string `yaml:"skip"`
	ResultSuccess      string `yaml:"result_success"`
	ResultFailure      string `yaml:"result_failure"`
	ResultInternalfail string `yaml:"result_internalfail"`
	DefaultFields      string `yaml:"default_fields"`
	OverrideFields     string `yaml:"override_fields"`
}

// Director configures backend placement.
type Director struct {
	// Backends lists backends like Dovecot's director_mail_servers:
	// "IP", "IP@tag", "IP1-IP2", each optionally followed by a vhost count.
	Backends []string `yaml:"backends"`
	// UserExpire is how long a user stays on its backend after its last
	// session ended (default 15m, minimum 10s).
	UserExpire time.Duration `yaml:"user_expire"`
	// UsernameHash is what the ring hashes (default "%Lu").
	UsernameHash string `yaml:"username_hash"`
}

// Backend configures how the gateway reaches and logs in to backends.
type Backend struct {
	Ports Ports `yaml:"ports"`
	// Timeout bounds connecting to and logging in on a backend, retries
	// included (Dovecot's login_proxy_timeout; a passdb proxy_timeout field
	// overrides it per user).
	Timeout time.Duration `yaml:"timeout"`
	// ConnectAttempts is how many times a refused or timed-out connection
	// is tried before the client gets a temporary failure.
	ConnectAttempts int `yaml:"connect_attempts"`
}

// Ports are the default backend ports per protocol.
type Ports struct {
	IMAP int `yaml:"imap"`
}

// Limits bound what a client may do before it has logged in.
type Limits struct {
	LoginTimeout    time.Duration `yaml:"login_timeout"`
	MaxLineLength   int           `yaml:"max_line_length"`
	MaxAuthFailures int           `yaml:"max_auth_failures"`
	MaxBadCommands  int           `yaml:"max_bad_commands"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// Load reads and validates the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse decodes YAML strictly, applies defaults and validates.
func Parse(data []byte) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty configuration")
		}
		return nil, err
	}
	c.applyDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Defaults, mostly Dovecot 2.3's.
const (
	DefaultIMAPPort        = 143
	DefaultBackendTimeout  = 30 * time.Second // login_proxy_timeout
	DefaultConnectAttempts = 3                // 1 + login_proxy_max_reconnects... bounded
	DefaultLoginTimeout    = 3 * time.Minute  // login processes' client timeout
	DefaultMaxLineLength   = 8192
	DefaultMaxAuthFailures = 3
	DefaultMaxBadCommands  = 10
)

func (c *Config) applyDefaults() {
	if c.Backend.Ports.IMAP == 0 {
		c.Backend.Ports.IMAP = DefaultIMAPPort
	}
	if c.Backend.Timeout == 0 {
		c.Backend.Timeout = DefaultBackendTimeout
	}
	if c.Backend.ConnectAttempts == 0 {
		c.Backend.ConnectAttempts = DefaultConnectAttempts
	}
	if c.Limits.LoginTimeout == 0 {
		c.Limits.LoginTimeout = DefaultLoginTimeout
	}
	if c.Limits.MaxLineLength == 0 {
		c.Limits.MaxLineLength = DefaultMaxLineLength
	}
	if c.Limits.MaxAuthFailures == 0 {
		c.Limits.MaxAuthFailures = DefaultMaxAuthFailures
	}
	if c.Limits.MaxBadCommands == 0 {
		c.Limits.MaxBadCommands = DefaultMaxBadCommands
	}
	if c.Auth.Cache.TTL == 0 {
		c.Auth.Cache.TTL = time.Hour
	}
	if c.Auth.Cache.NegativeTTL == nil {
		h := time.Hour
		c.Auth.Cache.NegativeTTL = &h
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	for i := range c.Listen {
		l := &c.Listen[i]
		if l.TLS != "" {
			continue
		}
		switch {
		case l.Protocol == "imaps":
			l.TLS = "implicit"
		case c.TLS.Cert != "":
			l.TLS = "starttls"
		default:
			l.TLS = "none"
		}
	}
}

// validate reports every problem at once.
func (c *Config) validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if len(c.Listen) == 0 {
		add("listen: at least one listener is needed")
	}
	for i, l := range c.Listen {
		switch l.Protocol {
		case "imap", "imaps":
		default:
			add("listen[%d]: unknown protocol %q (known: imap, imaps)", i, l.Protocol)
		}
		if _, _, err := net.SplitHostPort(l.Address); err != nil {
			add("listen[%d]: address %q: %v", i, l.Address, err)
		}
		switch l.TLS {
		case "none", "starttls", "implicit":
		default:
			add("listen[%d]: tls must be implicit, starttls or none, not %q", i, l.TLS)
		}
		if l.Protocol == "imaps" && l.TLS != "implicit" {
			add("listen[%d]: imaps is implicit TLS; tls: %s contradicts it", i, l.TLS)
		}
		if l.TLS != "none" && (c.TLS.Cert == "" || c.TLS.Key == "") {
			add("listen[%d]: tls %s needs tls.cert and tls.key", i, l.TLS)
		}
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		add("tls: cert and key go together")
	}
	for _, n := range c.TrustedNetworks {
		p, err := parsePrefix(n)
		if err != nil {
			add("trusted_networks: %v", err)
			continue
		}
		c.trusted = append(c.trusted, p)
	}
	if len(c.Passdb) == 0 {
		add("passdb: at least one passdb is needed")
	}
	for i, p := range c.Passdb {
		checkDriver(add, fmt.Sprintf("passdb[%d]", i), p.Driver, p.Args, p.Settings)
	}
	for i, u := range c.Userdb {
		checkDriver(add, fmt.Sprintf("userdb[%d]", i), u.Driver, u.Args, u.Settings)
	}
	if c.Auth.Cache.Size < 0 {
		add("auth.cache.size: negative")
	}
	if len(c.Director.Backends) == 0 {
		add("director.backends: at least one backend is needed")
	}
	if p := c.Backend.Ports.IMAP; p < 1 || p > 65535 {
		add("backend.ports.imap: %d is not a port", p)
	}
	if c.Backend.ConnectAttempts < 1 || c.Backend.ConnectAttempts > 10 {
		add("backend.connect_attempts: want 1..10")
	}
	if c.Limits.MaxLineLength < 1024 {
		add("limits.max_line_length: at least 1024")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level: want debug, info, warn or error")
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		add("log.format: want text or json")
	}
	return errors.Join(errs...)
}

func checkDriver(add func(string, ...any), where, driver, args string, settings map[string]string) {
	switch driver {
	case "static":
		if len(settings) > 0 {
			add("%s: the static driver takes args, not settings", where)
		}
	case "ldap", "sql":
		if args == "" && len(settings) == 0 {
			add("%s: %s needs args (the path of a Dovecot .conf.ext file) or settings", where, driver)
		}
	default:
		add("%s: unknown driver %q (known: static, ldap, sql)", where, driver)
	}
}

// parsePrefix accepts a CIDR prefix or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither an address nor a prefix", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Trusted returns the parsed trusted_networks.
func (c *Config) Trusted() []netip.Prefix { return c.trusted }
