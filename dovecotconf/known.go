// SPDX-License-Identifier: Apache-2.0

package dovecotconf

import (
	"fmt"
	"strings"
)

// Kind says why a setting was left behind.
type Kind int

const (
	// NotNeeded: the setting concerns something a gateway does not do
	// (store mail, run Dovecot's processes) or does anyway.
	NotNeeded Kind = iota + 1
	// NotSupported: maildirector has no equivalent.
	NotSupported
	// NeedsDecision: a translation exists but would be a guess.
	NeedsDecision
)

func (k Kind) String() string {
	switch k {
	case NotNeeded:
		return "not needed"
	case NotSupported:
		return "not supported"
	case NeedsDecision:
		return "needs a decision"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Note is one setting or section the translation did not carry over, or
// carried over with a caveat, and why.
type Note struct {
	Pos  Pos
	Key  string // "director_servers", "service imap-login { process_min_avail }"
	Kind Kind
	Why  string
}

// String is "file:line: key: kind: why", the form standard error gets.
func (n Note) String() string {
	if n.Key == "" {
		return fmt.Sprintf("%s: %s: %s", n.Pos, n.Kind, n.Why)
	}
	return fmt.Sprintf("%s: %s: %s: %s", n.Pos, n.Key, n.Kind, n.Why)
}

// Reasons shared by many settings.
const (
	whyBackend  = "backend setting: mail is stored and served by the backends, not the gateway"
	whyProcess  = "Dovecot's process tuning: maildirector is one Go process"
	whyLogging  = "logging: maildirector logs one line per login to standard error (log.level, log.format)"
	whyRing     = "the Director ring: maildirector gateways share the director's state through the director store (director.store), and a move ends the user's sessions on every gateway first"
	whyInternal = "one of Dovecot's internal processes"
	whyStats    = "statistics: maildirector exports Prometheus metrics on the admin listener"
	whyDoveadm  = "maildirector does not proxy doveadm: run doveadm on the backends, and maildirector's director commands for the director"
	whySubmit   = "maildirector has no submission proxy"
	whyGoTLS    = "maildirector uses Go's TLS defaults: TLS 1.2 and newer, Go's choice of ciphers and curves"
	whyNoGSSAPI = "GSSAPI and NTLM are not offered"
	whyNoEquiv  = "maildirector has no equivalent"
)

// settingReasons explains, for top-level settings the translation does
// not read, why not. Settings it reads but could not translate get their
// note where they are read.
var settingReasons = map[string]struct {
	kind Kind
	why  string
}{
	"director_servers":                       {NotNeeded, whyRing},
	"director_ping_idle_timeout":             {NotNeeded, whyRing},
	"director_ping_max_timeout":              {NotNeeded, whyRing},
	"director_output_buffer_size":            {NotNeeded, whyRing},
	"director_max_parallel_moves":            {NotNeeded, whyRing},
	"director_max_parallel_kicks":            {NotNeeded, whyRing},
	"director_user_kick_delay":               {NotNeeded, whyRing},
	"director_consistent_hashing":            {NotNeeded, "always on, as in Dovecot 2.3"},
	"director_flush_socket":                  {NotSupported, "maildirector has no flush hook; a flush ends the users' sessions on every gateway itself"},
	"auth_socket_path":                       {NotNeeded, "Director's socket plumbing (director-userdb): maildirector asks its director for every login and recipient"},
	"login_proxy_notify_path":                {NotNeeded, "Director's socket plumbing: sessions keep their users assigned without it"},
	"auth_verbose":                           {NotNeeded, whyLogging},
	"auth_verbose_passwords":                 {NotNeeded, whyLogging},
	"auth_debug":                             {NotNeeded, whyLogging},
	"auth_debug_passwords":                   {NotNeeded, whyLogging},
	"mail_debug":                             {NotNeeded, whyLogging},
	"verbose_ssl":                            {NotNeeded, whyLogging},
	"verbose_proctitle":                      {NotNeeded, whyProcess},
	"log_path":                               {NotNeeded, whyLogging},
	"info_log_path":                          {NotNeeded, whyLogging},
	"debug_log_path":                         {NotNeeded, whyLogging},
	"syslog_facility":                        {NotNeeded, whyLogging},
	"log_timestamp":                          {NotNeeded, whyLogging},
	"log_core_filter":                        {NotNeeded, whyLogging},
	"log_debug":                              {NotNeeded, whyLogging},
	"login_log_format":                       {NotNeeded, whyLogging},
	"login_log_format_elements":              {NotNeeded, whyLogging},
	"auth_stats":                             {NotNeeded, whyStats},
	"base_dir":                               {NotNeeded, whyProcess},
	"state_dir":                              {NotNeeded, whyProcess},
	"libexec_dir":                            {NotNeeded, whyProcess},
	"instance_name":                          {NotNeeded, whyProcess},
	"import_environment":                     {NotNeeded, whyProcess},
	"version_ignore":                         {NotNeeded, whyProcess},
	"config_cache_size":                      {NotNeeded, whyProcess},
	"process_shutdown_filter":                {NotNeeded, whyProcess},
	"auth_worker_max_count":                  {NotNeeded, "maildirector bounds costly password checks with auth.max_password_checks"},
	"auth_cache_verify_password_with_worker": {NotNeeded, whyProcess},
	"auth_policy_server_url":                 {NotSupported, "no auth policy server: maildirector has its own brute-force protection (limits.*)"},
	"auth_username_translation":              {NotSupported, whyNoEquiv},
	"auth_proxy_self":                        {NotSupported, "maildirector knows its own listener addresses and refuses to proxy to them; it takes no extra ones"},
	"auth_krb5_keytab":                       {NotSupported, whyNoGSSAPI},
	"auth_gssapi_hostname":                   {NotSupported, whyNoGSSAPI},
	"auth_use_winbind":                       {NotSupported, whyNoGSSAPI},
	"auth_winbind_helper_path":               {NotSupported, whyNoGSSAPI},
	"auth_ssl_require_client_cert":           {NotSupported, "maildirector asks for client certificates when tls.client_ca_file is set but does not refuse clients without one"},
	"login_greeting":                         {NotSupported, "maildirector's greeting is its own"},
	"login_access_sockets":                   {NotSupported, whyNoEquiv},
	"login_plugins":                          {NotSupported, whyNoEquiv},
	"login_plugin_dir":                       {NotSupported, whyNoEquiv},
	"login_source_ips":                       {NotSupported, "maildirector connects to backends from the address the system picks"},
	"login_proxy_rawlog_dir":                 {NotSupported, whyNoEquiv},
	"login_proxy_max_disconnect_delay":       {NotSupported, "sessions whose backend went away are all closed at once"},
	"lmtp_proxy_rawlog_dir":                  {NotSupported, whyNoEquiv},
	"lmtp_rawlog_dir":                        {NotSupported, whyNoEquiv},
	"rawlog_dir":                             {NotSupported, whyNoEquiv},
	"lmtp_user_concurrency_limit":            {NotSupported, "maildirector does not limit deliveries per user; the backends' lmtp_user_concurrency_limit still does"},
	"lmtp_verbose_replies":                   {NotNeeded, "the backends' replies are passed through as they are"},
	"imap_capability":                        {NotSupported, "the capabilities before login are maildirector's own; after login the client sees the backend's"},
	"imap_id_send":                           {NotSupported, whyNoEquiv},
	"imap_id_log":                            {NotSupported, whyNoEquiv},
	"imap_id_retain":                         {NotSupported, "maildirector forwards the client's address with IMAP ID, not the client's own ID fields"},
	"managesieve_implementation_string":      {NotSupported, "the ManageSieve greeting before login is maildirector's own"},
	"ssl_dh":                                 {NotNeeded, "Go's TLS uses elliptic-curve key exchange and needs no DH parameters"},
	"ssl_cipher_list":                        {NotSupported, whyGoTLS},
	"ssl_cipher_suites":                      {NotSupported, whyGoTLS},
	"ssl_curve_list":                         {NotSupported, whyGoTLS},
	"ssl_prefer_server_ciphers":              {NotSupported, whyGoTLS},
	"ssl_options":                            {NotSupported, whyGoTLS},
	"ssl_crypto_device":                      {NotSupported, whyGoTLS},
	"ssl_key_password":                       {NotSupported, "maildirector reads unencrypted keys only: decrypt the key file"},
	"ssl_alt_cert":                           {NotSupported, "one certificate per name: list a certificate for other names in tls.sni"},
	"ssl_alt_key":                            {NotSupported, "one certificate per name: list a certificate for other names in tls.sni"},
	"ssl_require_crl":                        {NotSupported, "client certificates are not checked against CRLs"},
	"ssl_client_require_valid_cert":          {NotSupported, "backend certificates are always verified unless the passdb says ssl=any-cert or starttls=any-cert"},
	"postmaster_address":                     {NotNeeded, whyBackend},
	"recipient_delimiter":                    {NotNeeded, whyBackend},
	"hostname":                               {NotNeeded, "only LMTP's greeting uses it on a gateway"},
}

// prefixReasons explain whole families of settings.
var prefixReasons = []struct {
	prefix string
	kind   Kind
	why    string
}{
	{"mail_", NotNeeded, whyBackend},
	{"mailbox_", NotNeeded, whyBackend},
	{"maildir_", NotNeeded, whyBackend},
	{"mbox_", NotNeeded, whyBackend},
	{"mdbox_", NotNeeded, whyBackend},
	{"lda_", NotNeeded, whyBackend},
	{"lmtp_", NotNeeded, whyBackend},
	{"imap_", NotNeeded, whyBackend},
	{"imapc_", NotNeeded, whyBackend},
	{"pop3_", NotNeeded, whyBackend},
	{"pop3c_", NotNeeded, whyBackend},
	{"managesieve_", NotNeeded, whyBackend},
	{"sieve", NotNeeded, whyBackend},
	{"quota", NotNeeded, whyBackend},
	{"first_valid_", NotNeeded, whyBackend},
	{"last_valid_", NotNeeded, whyBackend},
	{"valid_chroot_dirs", NotNeeded, whyBackend},
	{"replication_", NotNeeded, whyBackend},
	{"replicator_", NotNeeded, whyBackend},
	{"dsync_", NotNeeded, whyBackend},
	{"rejection_", NotNeeded, whyBackend},
	{"sendmail_path", NotNeeded, whyBackend},
	{"dict_", NotNeeded, whyBackend},
	{"lock_method", NotNeeded, whyBackend},
	{"dotlock_", NotNeeded, whyBackend},
	{"mmap_disable", NotNeeded, whyBackend},
	{"fsync_", NotNeeded, whyBackend},
	{"default_", NotNeeded, whyProcess},
	{"old_stats_", NotNeeded, whyStats},
	{"stats_", NotNeeded, whyStats},
	{"auth_policy_", NotSupported, "no auth policy server: maildirector has its own brute-force protection (limits.*)"},
	{"doveadm_", NotSupported, whyDoveadm},
	{"submission_", NotSupported, whySubmit},
}

// settingReason explains a setting nobody translated.
func settingReason(key string) (Kind, string) {
	if r, ok := settingReasons[key]; ok {
		return r.kind, r.why
	}
	for _, p := range prefixReasons {
		if strings.HasPrefix(key, p.prefix) {
			return p.kind, p.why
		}
	}
	return NotSupported, whyNoEquiv
}

// sectionReason explains a section nobody translated.
func sectionReason(n *Node) (Kind, string) {
	switch n.Key {
	case "namespace", "mailbox", "plugin", "dict", "map", "quota":
		return NotNeeded, whyBackend
	case "passdb", "userdb":
		return NotSupported, "a passdb or userdb inside a protocol or address block: maildirector has one chain for every protocol and address"
	case "service":
		switch n.Name {
		case "director":
			return NotNeeded, "Director's own process: maildirector is the director, and gateways share its state through the director store (director.store)"
		case "doveadm":
			return NotSupported, whyDoveadm
		case "submission-login", "submission":
			return NotSupported, whySubmit
		case "auth", "auth-worker", "anvil", "log", "config", "stats", "old-stats", "ipc", "dns-client", "dns_client", "tcpwrap", "health-check":
			return NotNeeded, whyInternal
		case "imap", "pop3", "managesieve", "indexer", "indexer-worker", "dict", "dict-async", "quota-status", "quota-warning",
			"imap-hibernate", "imap-urlauth", "imap-urlauth-login", "imap-urlauth-worker", "replicator", "aggregator":
			return NotNeeded, "a backend process: mail is stored and served by the backends, not the gateway"
		}
	}
	return NotSupported, whyNoEquiv
}

// minProtocolReason explains ssl_min_protocol: maildirector accepts TLS
// 1.2 and newer, always.
func minProtocolReason(v string) (Kind, string) {
	switch strings.ToUpper(strings.TrimSpace(v)) {
	case "TLSV1.2":
		return NotNeeded, "maildirector accepts TLS 1.2 and newer, as this says"
	case "TLSV1.3":
		return NotSupported, "maildirector accepts TLS 1.2 too"
	}
	return NeedsDecision, "maildirector accepts TLS 1.2 and newer only: clients that need " + v + " cannot connect"
}

// serviceSettingReason explains a setting inside a translated service.
func serviceSettingReason(key string) (Kind, string) {
	switch key {
	case "executable":
		return NotNeeded, "maildirector asks its director for every login; there is no separate director process to name"
	case "protocol", "type":
		return NotNeeded, "the listener's protocol says it"
	}
	return NotNeeded, whyProcess
}
