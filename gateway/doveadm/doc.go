// SPDX-License-Identifier: Apache-2.0

// Package doveadm is the doveadm front end: Dovecot 2.3's doveadm-server
// protocol over TCP (what `doveadm -S HOST:PORT … -u USER` and a Dovecot
// doveadm proxy speak), answered by sending each command to its user's
// backend — found through the passdb chain and the director exactly as a
// login would be — and relaying that backend's answer.
//
// The protocol, as Dovecot 2.3 speaks it (learned from
// src/doveadm/client-connection-tcp.c, server-connection.c and
// doveadm-mail-server.c, and checked against a running Dovecot 2.3.19):
//
//	client: VERSION\tdoveadm-server\t1\t<minor>
//	server: VERSION\tdoveadm-client\t1\t2      (only when minor > 0)
//	server: -                                    (authenticate; + when pre-authenticated)
//	client: PLAIN\t<base64 "\0doveadm\0<doveadm_password>">   (or STARTTLS first)
//	server: +                                    (or - and the connection closes)
//	client: <flags>\t<user>\t<command>\t<args…>  (fields tab-escaped)
//	client: <input as a dot stream>              (only for commands that read one: save)
//	server: <fields, each tab-escaped and ended by \t>\n+\n   or  …\n-<CODE>\n
//
// With a client minor version above 0, everything the server sends after
// its "+" is multiplexed: packets of [channel][4-byte big-endian
// length][data], channel 0 the reply and channel 'L' log lines (a level
// byte, the text, \n), which the client prints as "remote(HOST): …".
//
// A backend that is down gives the client -TEMPFAIL, never another
// backend's answer. Commands that act on a whole server (stop, reload,
// who, director …) and commands without a user are refused: behind the
// gateway there is no single server they could mean. doveadm's own -A and
// -u with wildcards are expanded by the doveadm client, which then sends
// one command per user, so they work.
//
// It may import gateway and auth.
package doveadm
