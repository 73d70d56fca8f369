// SPDX-License-Identifier: Apache-2.0

package harness

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The database and account every private MariaDB gets; the schema and
// seed (sql/) are loaded into it.
const (
	MariaDBDatabase = "maildirector"
	MariaDBUser     = "maildirector"
	MariaDBPassword = "maildirectorpw"
)

// MariaDBOptions describe one private MariaDB server.
type MariaDBOptions struct {
	// Dir is the instance's own directory (data, socket, log).
	Dir  string
	IP   string // address to listen on; 127.0.0.1 when empty
	Port int    // 0 picks a free one
	// SQL files are loaded, in order, into the database at the first start.
	SQL []string
}

// MariaDB is a private mariadbd. It can be stopped and started again on the
// same data and port, to test recovery.
type MariaDB struct {
	Opts MariaDBOptions
	// User and Password may use DB from 127.0.0.0/8 over TCP and over
	// Socket; root (no password) may do anything, over Socket only.
	User, Password, DB string
	Socket             string
	LogPath            string
	proc               *daemon
}

// StartMariaDB creates a data directory in o.Dir (which must not have one), starts mariadbd, creates the
// database and its account, and loads o.SQL.
func StartMariaDB(o MariaDBOptions) (*MariaDB, error) {
	if o.IP == "" {
		o.IP = "127.0.0.1"
	}
	if o.Port == 0 {
		p, err := FreePort(o.IP)
		if err != nil {
			return nil, err
		}
		o.Port = p
	}
	m := &MariaDB{
		Opts: o, User: MariaDBUser, Password: MariaDBPassword, DB: MariaDBDatabase,
		Socket: filepath.Join(o.Dir, "mysqld.sock"), LogPath: filepath.Join(o.Dir, "mariadbd.log"),
	}
	if len(m.Socket) >= 108 { // sun_path
		return nil, fmt.Errorf("mariadb: socket path too long for a UNIX socket: %s", m.Socket)
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, "tmp"), 0o700); err != nil {
		return nil, err
	}
	// normal: root@localhost has no password and no unix_socket check, so
	// the harness gets in whoever runs the tests.
	install := exec.Command("mariadb-install-db", append([]string{"--no-defaults",
		"--datadir=" + m.dataDir(), "--auth-root-authentication-method=normal", "--skip-test-db"},
		m.serverFlags()...)...)
	if out, err := install.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mariadb-install-db: %v\n%s", err, out)
	}
	if err := m.Start(); err != nil {
		return nil, err
	}
	setup := fmt.Sprintf("CREATE DATABASE %[1]s CHARACTER SET utf8mb4;\n", m.DB)
	for _, host := range []string{"localhost", "127.%"} {
		setup += fmt.Sprintf("CREATE USER '%[1]s'@'%[3]s' IDENTIFIED BY '%[2]s';\n"+
			"GRANT ALL PRIVILEGES ON %[4]s.* TO '%[1]s'@'%[3]s';\n", m.User, m.Password, host, m.DB)
	}
	if _, err := m.client(strings.NewReader(setup)); err != nil {
		m.Stop()
		return nil, err
	}
	if err := m.Load(o.SQL...); err != nil {
		m.Stop()
		return nil, err
	}
	return m, nil
}

func (m *MariaDB) dataDir() string { return filepath.Join(m.Opts.Dir, "data") }

// serverFlags are shared by the bootstrap and the server: the log file
// size must agree, and small buffers keep a test instance light.
func (m *MariaDB) serverFlags() []string {
	f := []string{
		"--skip-name-resolve",
		"--innodb-log-file-size=8M",
		"--innodb-buffer-pool-size=32M",
		// no io_uring/libaio: container seccomp profiles often forbid them
		"--innodb-use-native-aio=0",
		"--tmpdir=" + filepath.Join(m.Opts.Dir, "tmp"),
	}
	if os.Geteuid() == 0 {
		// mariadbd refuses to run as root unless told to.
		f = append(f, "--user=root")
	}
	return f
}

// Start starts mariadbd on the existing data directory, the first time or
// again after Stop or Kill, and waits until it greets over TCP.
func (m *MariaDB) Start() error {
	if m.proc.alive() {
		return fmt.Errorf("mariadbd on %s is already running", m.Addr())
	}
	// Without --log-error, the server logs to stderr: our log file.
	args := append([]string{"mariadbd", "--no-defaults", "--datadir=" + m.dataDir(),
		"--socket=" + m.Socket, "--pid-file=" + filepath.Join(m.Opts.Dir, "mariadbd.pid"),
		"--skip-networking=0", "--bind-address=" + m.Opts.IP, "--port=" + strconv.Itoa(m.Opts.Port),
		"--skip-log-bin"}, m.serverFlags()...)
	proc, err := startDaemon(m.LogPath, args...)
	if err != nil {
		return fmt.Errorf("start mariadbd: %w", err)
	}
	m.proc = proc
	if err := proc.waitReady(60*time.Second, func() error { return mysqlGreeting(m.Addr()) }); err != nil {
		proc.stop(30 * time.Second)
		return fmt.Errorf("mariadbd on %s did not come up: %v\n%s", m.Addr(), err, tail([]byte(m.Log()), 20))
	}
	return nil
}

// Addr returns ip:port.
func (m *MariaDB) Addr() string { return net.JoinHostPort(m.Opts.IP, strconv.Itoa(m.Opts.Port)) }

// Stop shuts mariadbd down cleanly (SIGTERM) and waits; Start brings it
// back.
func (m *MariaDB) Stop() { m.proc.stop(30 * time.Second) }

// Kill ends mariadbd at once (SIGKILL), as a crash would; InnoDB recovers
// at the next Start.
func (m *MariaDB) Kill() { m.proc.kill() }

// Freeze stops mariadbd (SIGSTOP): the kernel still accepts connections,
// but nothing answers, not even the greeting. Thaw resumes it.
func (m *MariaDB) Freeze() { m.proc.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen mariadbd.
func (m *MariaDB) Thaw() { m.proc.signal(syscall.SIGCONT) }

// Log returns mariadbd's output so far, across restarts.
func (m *MariaDB) Log() string {
	b, _ := os.ReadFile(m.LogPath)
	return string(b)
}

// Exec runs SQL statements as root in the database and returns the result
// rows, tab-separated, without headers.
func (m *MariaDB) Exec(sql string) (string, error) {
	return m.client(strings.NewReader(sql), "--batch", "--skip-column-names", m.DB)
}

// Load runs SQL files as root in the database, in order.
func (m *MariaDB) Load(files ...string) error {
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		_, err = m.client(f, m.DB)
		f.Close()
		if err != nil {
			return fmt.Errorf("load %s: %w", name, err)
		}
	}
	return nil
}

// client runs the mariadb command-line client as root over the socket.
func (m *MariaDB) client(stdin io.Reader, args ...string) (string, error) {
	cmd := exec.Command("mariadb", append([]string{"--no-defaults", "--socket=" + m.Socket, "--user=root"}, args...)...)
	cmd.Stdin = stdin
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("mariadb: %v: %s", err, stderr.String())
	}
	return string(out), nil
}

// mysqlGreeting reads the server's first packet, its handshake (protocol
// version 10): the server accepts clients. An error packet (0xff) instead
// means it is up but refusing.
func mysqlGreeting(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	hdr := make([]byte, 5) // 3-byte length, sequence id, first payload byte
	if _, err := io.ReadFull(c, hdr); err != nil {
		return err
	}
	if hdr[4] != 10 {
		return fmt.Errorf("greeting starts with %#x, not protocol version 10", hdr[4])
	}
	return nil
}
