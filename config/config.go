// SPDX-License-Identifier: Apache-2.0

package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
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
	LMTP           LMTP     `yaml:"lmtp"`
	Doveadm        Doveadm  `yaml:"doveadm"`
	Sieve          Sieve    `yaml:"sieve"`
	Limits         Limits   `yaml:"limits"`
	Log            Log      `yaml:"log"`
	// Admin is the runtime admin surface: socket and API.
	Admin Admin `yaml:"admin"`
	// HAProxyTrustedNetworks may send PROXY protocol headers to listeners
	// with haproxy: true (Dovecot's haproxy_trusted_networks).
	HAProxyTrustedNetworks []string `yaml:"haproxy_trusted_networks"`
	// HAProxyTimeout bounds the wait for the PROXY header (default 3s).
	HAProxyTimeout time.Duration `yaml:"haproxy_timeout"`

	trusted []netip.Prefix
	haproxy []netip.Prefix
}

// TLS is the gateway's certificate for clients.
type TLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// SNI lists more certificates; each is presented to clients that ask
	// for one of its names (TLS SNI), the first one to all others.
	SNI []CertKey `yaml:"sni"`
	// ClientCAFile makes the gateway ask clients for a certificate and
	// verify it against these CAs (for SASL EXTERNAL).
	ClientCAFile string `yaml:"client_ca_file"`
	// CertUsernameField names the user in a client certificate:
	// commonName (default) or emailAddress.
	CertUsernameField string `yaml:"cert_username_field"`
}

// CertKey is a PEM certificate chain and its key.
type CertKey struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Auth holds Dovecot's auth_* settings.
type Auth struct {
	// UsernameFormat is applied to login names first (auth_username_format,
	// default "%Lu").
	UsernameFormat string `yaml:"username_format"`
	// DefaultRealm is appended as "@realm" to a login or LMTP recipient
	// name without "@", before UsernameFormat and before any database or
	// the director sees the name (auth_default_realm). Unlike Realm it is
	// no SASL realm: it makes "user0042" and "user0042@example.org" one
	// user.
	DefaultRealm string `yaml:"default_realm"`
	// MasterUserSeparator splits "user<sep>master" logins
	// (auth_master_user_separator; "" = off).
	MasterUserSeparator string `yaml:"master_user_separator"`
	// UsernameChars lists the characters a login name may have
	// (auth_username_chars); unset means Dovecot's default, "" means any.
	UsernameChars *string `yaml:"username_chars"`
	Cache         Cache   `yaml:"cache"`
	// Mechanisms are the SASL mechanisms offered (Dovecot's
	// auth_mechanisms, space-separated; default "plain login").
	Mechanisms string `yaml:"mechanisms"`
	// AnonymousUsername is the user ANONYMOUS logs in as.
	AnonymousUsername string `yaml:"anonymous_username"`
	// Realm is the realm DIGEST-MD5 offers (default: none, as Dovecot
	// without auth_realms); a DIGEST-MD5 user name without "@" is then
	// looked up as user@realm. Other mechanisms ignore it: DefaultRealm
	// is the one for every login.
	Realm string `yaml:"realm"`
	// OAuth2 validates OAUTHBEARER / XOAUTH2 tokens; without it tokens are
	// passed to the backend, which validates them.
	OAuth2 OAuth2 `yaml:"oauth2"`
	// MaxPasswordChecks bounds the stored-password checks running at once
	// (costly schemes hold memory and a core each); 0 means the number of
	// CPU cores the process may use. Further logins queue.
	MaxPasswordChecks int `yaml:"max_password_checks"`
}

// OAuth2 is a token introspection endpoint (RFC 7662).
type OAuth2 struct {
	IntrospectionURL  string `yaml:"introspection_url"`
	ClientID          string `yaml:"client_id"`
	ClientSecret      string `yaml:"client_secret"`
	UsernameAttribute string `yaml:"username_attribute"`
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
	// Store is where hosts and assignments live: "embedded" (default: an
	// etcd member in DataDir), "etcd" (an external cluster) or "memory"
	// (this process only, nothing kept).
	Store string `yaml:"store"`
	// DataDir holds the embedded member's data and its socket.
	DataDir string `yaml:"data_dir"`
	// LeaseTTL is how long a gateway cut off the store keeps serving
	// before it fences itself (default 15s).
	LeaseTTL time.Duration `yaml:"lease_ttl"`
	// Name names this gateway to the others (default: the host name).
	Name     string   `yaml:"name"`
	Etcd     Etcd     `yaml:"etcd"`
	Embedded Embedded `yaml:"embedded"`
	// Health turns on the built-in backend health checks.
	Health *Health `yaml:"health"`
}

// Etcd configures an external etcd v3 cluster.
type Etcd struct {
	Endpoints   []string      `yaml:"endpoints"`
	Prefix      string        `yaml:"prefix"`
	DialTimeout time.Duration `yaml:"dial_timeout"`
	TLS         EtcdTLS       `yaml:"tls"`
	Username    string        `yaml:"username"`
	Password    string        `yaml:"password"`
}

// EtcdTLS is a CA to verify servers (or peers) and a certificate to show.
type EtcdTLS struct {
	CA   string `yaml:"ca"`
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Embedded configures the etcd member serve runs. Alone (no
// initial_cluster) it listens on a UNIX socket in data_dir only.
type Embedded struct {
	Name                string   `yaml:"name"`
	PeerURLs            []string `yaml:"peer_urls"`
	ClientURLs          []string `yaml:"client_urls"`
	InitialCluster      string   `yaml:"initial_cluster"`
	InitialClusterState string   `yaml:"initial_cluster_state"`
	// TLS protects peer and TCP client traffic: members and clients must
	// show a certificate signed by CA.
	TLS EtcdTLS `yaml:"tls"`
}

// Limits bound what a client may do before it has logged in.
type Limits struct {
	// AuthFailureDelay delays every failed login's answer (Dovecot's
	// auth_failure_delay, default 2s; "0s" turns it off).
	AuthFailureDelay *time.Duration `yaml:"auth_failure_delay"`
	// AuthPenaltyMax caps the per-address penalty that doubles with each
	// failure (default 15s; "0s" turns the penalty off).
	AuthPenaltyMax *time.Duration `yaml:"auth_penalty_max"`
	// MaxUserIPConnections bounds one user's sessions from one address
	// (Dovecot's mail_max_userip_connections, default 10; 0: none).
	MaxUserIPConnections *int `yaml:"max_userip_connections"`
	// MaxPreloginConnections bounds the IMAP, POP3 and ManageSieve
	// connections not logged in yet, all listeners together (0, the
	// default: a quarter of the open-files limit).
	MaxPreloginConnections int `yaml:"max_prelogin_connections"`
	// MaxPreloginPerIP bounds those of one client address (default 100;
	// 0: none). trusted_networks are exempt.
	MaxPreloginPerIP *int          `yaml:"max_prelogin_per_ip"`
	LoginTimeout     time.Duration `yaml:"login_timeout"`
	MaxLineLength    int           `yaml:"max_line_length"`
	MaxAuthFailures  int           `yaml:"max_auth_failures"`
	MaxBadCommands   int           `yaml:"max_bad_commands"`
}

// Sieve configures the ManageSieve capabilities announced before login;
// they should be the backends' own.
type Sieve struct {
	// Extensions is the SIEVE capability (default: what Dovecot 2.3's
	// Pigeonhole announces out of the box).
	Extensions string `yaml:"extensions"`
	// Notify is the NOTIFY capability (default "mailto").
	Notify string `yaml:"notify"`
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
	DefaultBackendTimeout  = 30 * time.Second // login_proxy_timeout
	DefaultConnectAttempts = 3                // tries before [UNAVAILABLE]
	DefaultWarmConnections = 2                // per backend address
	DefaultLoginTimeout    = 3 * time.Minute  // login processes' client timeout
	DefaultMaxLineLength   = 8192
	DefaultMaxAuthFailures = 3
	DefaultMaxBadCommands  = 10
	// DefaultMaxPreloginPerIP: more than this many connections from one
	// address that have not logged in is a flood, not a busy NAT (a real
	// client logs in within milliseconds).
	DefaultMaxPreloginPerIP = 100
)

func (c *Config) applyDefaults() {
	c.Backend.applyDefaults()
	c.LMTP.applyDefaults()
	c.Doveadm.applyDefaults()
	if c.Director.Store == "" {
		c.Director.Store = "embedded"
	}
	if c.Director.DataDir == "" {
		c.Director.DataDir = "/var/lib/maildirector"
	}
	if c.Director.Etcd.Prefix == "" {
		c.Director.Etcd.Prefix = "/maildirector/"
	}
	if c.Director.Health != nil {
		c.Director.Health.applyDefaults()
	}
	c.Admin.applyDefaults()
	if c.HAProxyTimeout == 0 {
		c.HAProxyTimeout = 3 * time.Second
	}
	if c.Limits.AuthFailureDelay == nil {
		d := 2 * time.Second
		c.Limits.AuthFailureDelay = &d
	}
	if c.Limits.AuthPenaltyMax == nil {
		d := 15 * time.Second
		c.Limits.AuthPenaltyMax = &d
	}
	if c.Limits.MaxUserIPConnections == nil {
		n := 10
		c.Limits.MaxUserIPConnections = &n
	}
	if c.Limits.MaxPreloginPerIP == nil {
		n := DefaultMaxPreloginPerIP
		c.Limits.MaxPreloginPerIP = &n
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
	if c.Auth.Mechanisms == "" {
		c.Auth.Mechanisms = "plain login"
	}
	if c.Auth.AnonymousUsername == "" {
		c.Auth.AnonymousUsername = "anonymous"
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
		c.Listen[i].applyDefaults(c.TLS.Cert != "")
	}
}

// validate reports every problem at once.
func (c *Config) validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if len(c.Listen) == 0 {
		add("listen: at least one listener is needed")
	}
	for i := range c.Listen {
		c.Listen[i].validate(add, i, c.TLS)
	}
	for _, n := range c.HAProxyTrustedNetworks {
		p, err := parsePrefix(n)
		if err != nil {
			add("haproxy_trusted_networks: %v", err)
			continue
		}
		c.haproxy = append(c.haproxy, p)
	}
	c.Backend.validate(add)
	c.LMTP.validate(add)
	c.Doveadm.validate(add, c.Listen)
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
	if c.Auth.MaxPasswordChecks < 0 {
		add("auth.max_password_checks: negative")
	}
	if strings.ContainsFunc(c.Auth.DefaultRealm, func(r rune) bool { return r == '@' || r <= ' ' || r == 0x7f }) {
		add("auth.default_realm: %q: a domain, without @, spaces or control characters", c.Auth.DefaultRealm)
	}
	switch c.TLS.CertUsernameField {
	case "", "commonName", "emailAddress":
	default:
		add("tls.cert_username_field: want commonName or emailAddress")
	}
	if len(c.Director.Backends) == 0 {
		add("director.backends: at least one backend is needed")
	}
	switch c.Director.Store {
	case "memory", "embedded":
	case "etcd":
		if len(c.Director.Etcd.Endpoints) == 0 {
			add("director.etcd.endpoints: needed with store: etcd")
		}
	default:
		add("director.store: want embedded, etcd or memory")
	}
	if c.Director.LeaseTTL != 0 && c.Director.LeaseTTL < 2*time.Second {
		add("director.lease_ttl: at least 2s")
	}
	if c.Director.Health != nil {
		c.Director.Health.validate(add)
	}
	if e := c.Director.Embedded; (e.InitialCluster == "") != (len(e.PeerURLs) == 0) {
		add("director.embedded: peer_urls and initial_cluster go together")
	}
	switch c.Director.Embedded.InitialClusterState {
	case "", "new", "existing":
	default:
		add("director.embedded.initial_cluster_state: want new or existing")
	}
	c.Admin.validate(add)
	if c.Limits.MaxPreloginConnections < 0 || *c.Limits.MaxPreloginPerIP < 0 {
		add("limits.max_prelogin_connections, limits.max_prelogin_per_ip: not negative")
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

// HAProxyTrusted returns the parsed haproxy_trusted_networks.
func (c *Config) HAProxyTrusted() []netip.Prefix { return c.haproxy }
