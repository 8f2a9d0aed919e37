// Package demo holds the building blocks of `indexpilot demo`: a throwaway
// PostgreSQL cluster built from the local server binaries, a small
// multi-tenant schema with deterministic data and no secondary indexes, a
// fixed workload that filters on unindexed columns, and a before/after
// measurement on equal query counts. Each block is a plain function that
// writes its progress to an io.Writer (nil means silent).
package demo

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Layout of a cluster directory. StartCluster refuses a non-empty directory
// holding anything else, so Stop may remove the whole directory.
const (
	dataDirName   = "pgdata"
	socketDirName = "socket"
	logFileName   = "postgres.log"
)

// ErrPrerequisite is matched (errors.Is) by the errors StartCluster
// returns when the machine lacks something it cannot provide itself: the
// server binaries, the hypopg or pg_stat_statements extension, or (as root)
// an OS user postgres. Their text says what to install.
var ErrPrerequisite = errors.New("missing prerequisite")

// prereqError is a one-line prerequisite error matching ErrPrerequisite.
type prereqError string

func (e prereqError) Error() string { return string(e) }

// Is makes errors.Is(err, ErrPrerequisite) true.
func (e prereqError) Is(target error) bool { return target == ErrPrerequisite }

// superuser is the database superuser initdb creates; the URL connects as it.
const superuser = "postgres"

// serverOSUser owns and runs the cluster when the caller is root: initdb
// refuses to run as root.
const serverOSUser = "postgres"

// maxSocketDir keeps "<dir>/.s.PGSQL.<port>" within the 107 bytes a unix
// socket path may have.
const maxSocketDir = 90

// debianBinRoot is where Debian and Ubuntu install server binaries, one
// directory per major version.
const debianBinRoot = "/usr/lib/postgresql"

// Cluster is a throwaway PostgreSQL cluster started by StartCluster. It
// listens on 127.0.0.1 on a free port and on a private unix-socket
// directory, preloads pg_stat_statements (track = all), trusts local
// connections and runs with fsync off: it is for demos and tests only.
type Cluster struct {
	// Dir is the directory given to StartCluster (absolute).
	Dir string
	// DataDir is the PGDATA directory inside Dir.
	DataDir string
	// SocketDir is the unix-socket directory: inside Dir, or a short
	// temporary directory when Dir's path is too long for a socket.
	SocketDir string
	// Port is the TCP port on 127.0.0.1.
	Port int
	// BinDir holds the server binaries used (initdb, pg_ctl, postgres).
	BinDir string
	// Major is the server's major version, e.g. 15.
	Major int
	// KeepDir makes Stop leave Dir (data and log) in place.
	KeepDir bool

	cred      *osCredential
	tmpSocket bool
	progress  io.Writer

	mu      sync.Mutex
	stopped bool
}

// osCredential is the OS user the server binaries run as when we are root.
type osCredential struct {
	name     string
	uid, gid uint32
}

// StartCluster initializes and starts a throwaway cluster in dir (created
// when missing). It uses the newest server under
// /usr/lib/postgresql/<version>/bin, or the one pg_config on PATH names.
// As root it runs initdb and pg_ctl as the OS user postgres and hands dir to
// it; otherwise it runs them as the caller. A cluster left in dir by a
// killed run is stopped and removed first; a directory holding anything
// else is refused. It fails with one line naming the package to install
// when hypopg is missing. It never reads or changes the configuration of
// any other cluster on the machine.
func StartCluster(ctx context.Context, dir string, progress io.Writer) (*Cluster, error) {
	return StartClusterWith(ctx, dir, progress, ClusterOptions{})
}

// ClusterOptions change a throwaway cluster's settings; zero values keep
// the demo's.
type ClusterOptions struct {
	// MaxConnections is max_connections (default 50).
	MaxConnections int
}

// StartClusterWith is StartCluster with options.
func StartClusterWith(ctx context.Context, dir string, progress io.Writer, opts ClusterOptions) (*Cluster, error) {
	progress = orDiscard(progress)
	begin := time.Now()

	binDir, major, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	if err := checkExtensionFiles(ctx, binDir, major); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("resolve cluster directory: %w", err)
	}
	c := &Cluster{
		Dir:      abs,
		DataDir:  filepath.Join(abs, dataDirName),
		BinDir:   binDir,
		Major:    major,
		progress: progress,
	}
	if os.Geteuid() == 0 {
		cred, err := lookupOSUser(serverOSUser)
		if err != nil {
			return nil, err
		}
		c.cred = cred
	}
	if err := c.prepareDir(); err != nil {
		return nil, err
	}
	if err := c.clearLeftover(ctx); err != nil {
		return nil, err
	}
	if err := c.makeSocketDir(); err != nil {
		return nil, err
	}

	fmt.Fprintf(progress, "cluster: initdb (PostgreSQL %d, %s) in %s ...\n", major, binDir, c.DataDir)
	t := time.Now()
	if _, err := c.run(ctx, "initdb", "-D", c.DataDir, "-U", superuser, "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		c.cleanupFailed()
		return nil, fmt.Errorf("initialize cluster: %w", err)
	}
	fmt.Fprintf(progress, "cluster: initdb done in %s\n", since(t))
	if err := c.writeConfig(opts); err != nil {
		c.cleanupFailed()
		return nil, err
	}
	if err := c.start(ctx); err != nil {
		c.cleanupFailed()
		return nil, err
	}
	fmt.Fprintf(progress, "cluster: PostgreSQL %d ready on 127.0.0.1:%d (socket dir %s) after %s\n",
		major, c.Port, c.SocketDir, since(begin))
	return c, nil
}

// URL is a connection URL for database db on the cluster, as superuser
// postgres over TCP. It holds no password (trust auth).
func (c *Cluster) URL(db string) string { return c.URLAs(superuser, db) }

// URLAs is URL for another role (trust auth: no password).
func (c *Cluster) URLAs(role, db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", url.PathEscape(role), c.Port, url.PathEscape(db))
}

// Stop shuts the server down (pg_ctl stop -m fast) and removes Dir unless
// KeepDir is set. Calling it again after a success does nothing. When the
// server cannot be stopped, Dir is left alone so that nothing removes the
// files under a running server.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	t := time.Now()
	if fileExists(filepath.Join(c.DataDir, "postmaster.pid")) {
		if _, err := c.run(ctx, "pg_ctl", "-D", c.DataDir, "-m", "fast", "-w", "-t", "60", "stop"); err != nil {
			if fileExists(filepath.Join(c.DataDir, "postmaster.pid")) {
				return fmt.Errorf("stop cluster in %s: %w", c.Dir, err)
			}
		}
	}
	c.stopped = true
	if c.tmpSocket {
		_ = os.RemoveAll(c.SocketDir)
	}
	if c.KeepDir {
		fmt.Fprintf(c.progress, "cluster: stopped in %s; kept %s\n", since(t), c.Dir)
		return nil
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		return fmt.Errorf("remove cluster directory %s: %w", c.Dir, err)
	}
	fmt.Fprintf(c.progress, "cluster: stopped in %s; removed %s\n", since(t), c.Dir)
	return nil
}

// FindBinaries locates the PostgreSQL server binaries: the newest major
// version under /usr/lib/postgresql/<version>/bin, or else the bindir of
// the pg_config found on PATH. It returns the directory and the major
// version.
func FindBinaries() (binDir string, major int, err error) {
	if dir, v, ok := newestUnder(debianBinRoot); ok {
		return dir, v, nil
	}
	if pgConfig, lerr := exec.LookPath("pg_config"); lerr == nil {
		dir, derr := exec.Command(pgConfig, "--bindir").Output()
		ver, verr := exec.Command(pgConfig, "--version").Output()
		if derr == nil && verr == nil {
			bin := strings.TrimSpace(string(dir))
			if v, ok := parseMajor(string(ver)); ok && hasServerBinaries(bin) {
				return bin, v, nil
			}
		}
	}
	return "", 0, prereqError("find postgresql server binaries: none under /usr/lib/postgresql/<version>/bin nor via pg_config on PATH; install the postgresql server package (infra/scripts/setup-postgres.sh does it)")
}

// newestUnder picks the highest numeric version directory under root that
// holds initdb, pg_ctl and postgres.
func newestUnder(root string) (string, int, bool) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return "", 0, false
	}
	best, bestDir := -1, ""
	for _, e := range entries {
		v, ok := parseMajor(e.Name())
		if !ok {
			continue
		}
		bin := filepath.Join(root, e.Name(), "bin")
		if v > best && hasServerBinaries(bin) {
			best, bestDir = v, bin
		}
	}
	return bestDir, best, best >= 0
}

// parseMajor reads the major version from "15", "9.6", "PostgreSQL 15.20"
// or "postgres (PostgreSQL) 16.4 (Debian ...)". For 9.x it returns 9.
func parseMajor(s string) (int, bool) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return 0, false
	}
	for _, f := range fields {
		head, _, _ := strings.Cut(f, ".")
		if v, err := strconv.Atoi(head); err == nil && v > 0 {
			return v, true
		}
	}
	return 0, false
}

func hasServerBinaries(bin string) bool {
	for _, p := range []string{"initdb", "pg_ctl", "postgres"} {
		st, err := os.Stat(filepath.Join(bin, p))
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// checkExtensionFiles makes sure the server has pg_stat_statements and
// hypopg installed, by their control files in the server's share
// directory, before anything is created.
func checkExtensionFiles(ctx context.Context, binDir string, major int) error {
	share := filepath.Join("/usr/share/postgresql", strconv.Itoa(major))
	if pc := filepath.Join(binDir, "pg_config"); fileExists(pc) {
		if out, err := exec.CommandContext(ctx, pc, "--sharedir").Output(); err == nil {
			share = strings.TrimSpace(string(out))
		}
	}
	ext := filepath.Join(share, "extension")
	if !fileExists(filepath.Join(ext, "hypopg.control")) {
		return prereqError(fmt.Sprintf("hypopg is not installed for PostgreSQL %d: install package postgresql-%d-hypopg (as root, infra/scripts/setup-postgres.sh installs it)", major, major))
	}
	if !fileExists(filepath.Join(ext, "pg_stat_statements.control")) {
		return prereqError(fmt.Sprintf("pg_stat_statements is not installed for PostgreSQL %d: install the server's contrib modules (package postgresql-contrib; infra/scripts/setup-postgres.sh)", major))
	}
	return nil
}

func lookupOSUser(name string) (*osCredential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, prereqError(fmt.Sprintf("running as root needs an OS user %q to run the throwaway cluster (initdb refuses root): %v", name, err))
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("read ids of OS user %q: not numeric", name)
	}
	return &osCredential{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
}

// prepareDir creates Dir, hands it to the server's OS user and checks that
// this user can reach it.
func (c *Cluster) prepareDir() error {
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return fmt.Errorf("create cluster directory: %w", err)
	}
	entries, err := os.ReadDir(c.Dir)
	if err != nil {
		return fmt.Errorf("read cluster directory: %w", err)
	}
	for _, e := range entries {
		switch e.Name() {
		case dataDirName, socketDirName, logFileName:
		default:
			return fmt.Errorf("cluster directory %s is not empty and holds no demo cluster (found %q): use an empty or new directory", c.Dir, e.Name())
		}
	}
	if c.cred == nil {
		return nil
	}
	if err := os.Chown(c.Dir, int(c.cred.uid), int(c.cred.gid)); err != nil {
		return fmt.Errorf("hand cluster directory to OS user %s: %w", c.cred.name, err)
	}
	return checkReachable(c.Dir, c.cred)
}

// checkReachable verifies that every parent of dir grants search permission
// to cred (ACLs aside): the server cannot start in a directory it cannot
// reach, and its error would be obscure.
func checkReachable(dir string, cred *osCredential) error {
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("check cluster directory parent %s: %w", p, err)
		}
		uid, gid, ok := ownerOf(st)
		mode := st.Mode().Perm()
		reachable := mode&0o001 != 0 ||
			(ok && gid == cred.gid && mode&0o010 != 0) ||
			(ok && uid == cred.uid && mode&0o100 != 0)
		if !reachable {
			return fmt.Errorf("cluster directory %s is not reachable by OS user %s: %s has mode %o (give it o+x, or use a directory under %s)", dir, cred.name, p, mode, os.TempDir())
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// clearLeftover stops a server left running in Dir by a killed run and
// removes its files.
func (c *Cluster) clearLeftover(ctx context.Context) error {
	pidFile := filepath.Join(c.DataDir, "postmaster.pid")
	if raw, err := os.ReadFile(pidFile); err == nil {
		first, _, _ := strings.Cut(string(raw), "\n")
		pid, perr := strconv.Atoi(strings.TrimSpace(first))
		if perr == nil && pid > 0 && serverRunning(pid, c.DataDir) {
			fmt.Fprintf(c.progress, "cluster: stopping a server left in %s by an earlier run (pid %d)\n", c.Dir, pid)
			if _, err := c.run(ctx, "pg_ctl", "-D", c.DataDir, "-m", "immediate", "-w", "-t", "60", "stop"); err != nil {
				if serverRunning(pid, c.DataDir) {
					return fmt.Errorf("stop leftover cluster in %s: %w", c.Dir, err)
				}
			}
		}
	}
	for _, name := range []string{dataDirName, socketDirName, logFileName} {
		if err := os.RemoveAll(filepath.Join(c.Dir, name)); err != nil {
			return fmt.Errorf("remove leftover %s: %w", name, err)
		}
	}
	return nil
}

// serverRunning reports whether pid is a live postgres for dataDir. Where
// /proc exists it checks the command line, so that a recycled pid of an
// unrelated process is never signalled; elsewhere it trusts pg_ctl's own
// check.
func serverRunning(pid int, dataDir string) bool {
	if !fileExists("/proc/self/cmdline") {
		return true
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	return bytes.Contains(raw, []byte(dataDir))
}

func (c *Cluster) makeSocketDir() error {
	c.SocketDir = filepath.Join(c.Dir, socketDirName)
	if len(c.SocketDir) > maxSocketDir {
		d, err := os.MkdirTemp("", "ipdemo-")
		if err != nil {
			return fmt.Errorf("create socket directory: %w", err)
		}
		c.SocketDir, c.tmpSocket = d, true
	} else if err := os.Mkdir(c.SocketDir, 0o700); err != nil {
		return fmt.Errorf("create socket directory: %w", err)
	}
	if c.cred != nil {
		if err := os.Chown(c.SocketDir, int(c.cred.uid), int(c.cred.gid)); err != nil {
			return fmt.Errorf("hand socket directory to OS user %s: %w", c.cred.name, err)
		}
	}
	return nil
}

// writeConfig appends the demo settings to postgresql.conf. The port is
// given on the command line so that a retry can pick another.
func (c *Cluster) writeConfig(opts ClusterOptions) error {
	maxConns := 50
	if opts.MaxConnections > 0 {
		maxConns = opts.MaxConnections
	}
	conf := fmt.Sprintf(`
# --- added by indexpilot demo (throwaway cluster) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '%s'
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
pg_stat_statements.max = 10000
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = %d
shared_buffers = '128MB'
max_wal_size = '1GB'
`, strings.ReplaceAll(c.SocketDir, "'", "''"), maxConns)
	f, err := os.OpenFile(filepath.Join(c.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open postgresql.conf: %w", err)
	}
	if _, err := f.WriteString(conf); err != nil {
		_ = f.Close()
		return fmt.Errorf("write postgresql.conf: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write postgresql.conf: %w", err)
	}
	return nil
}

// start launches the server on a free port, retrying with another port
// when the chosen one was taken in the meantime.
func (c *Cluster) start(ctx context.Context) error {
	logFile := filepath.Join(c.Dir, logFileName)
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		c.Port = port
		fmt.Fprintf(c.progress, "cluster: starting on 127.0.0.1:%d ...\n", port)
		_, err = c.run(ctx, "pg_ctl", "-D", c.DataDir, "-l", logFile, "-w", "-t", "60",
			"-o", "-p "+strconv.Itoa(port), "start")
		if err == nil {
			return nil
		}
		logTail := lastLogLine(logFile)
		lastErr = fmt.Errorf("start cluster: %w (log: %s)", err, logTail)
		if !strings.Contains(logTail, "could not bind") && !strings.Contains(logTail, "already in use") &&
			!strings.Contains(logTail, "could not create any TCP/IP sockets") {
			return lastErr
		}
	}
	return lastErr
}

// cleanupFailed removes what a failed start left, best effort.
func (c *Cluster) cleanupFailed() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	keep := c.KeepDir
	c.KeepDir = false
	if err := c.Stop(ctx); err != nil {
		fmt.Fprintf(c.progress, "cluster: cleanup after a failed start: %v\n", err)
	}
	c.KeepDir = keep
}

// run executes a server binary as the cluster's OS user, with PG*
// variables of the caller's environment removed so that they cannot point
// the tools elsewhere. The error carries the tool's last meaningful line.
func (c *Cluster) run(ctx context.Context, prog string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.BinDir, prog), args...)
	cmd.Dir = c.Dir
	cmd.Env = serverEnv()
	cmd.WaitDelay = 5 * time.Second
	if c.cred != nil {
		setCredential(cmd, c.cred.uid, c.cred.gid)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			return string(out), fmt.Errorf("%s: %w", prog, ctx.Err())
		}
		if line := lastMeaningfulLine(string(out)); line != "" {
			return string(out), fmt.Errorf("%s: %s", prog, line)
		}
		return string(out), fmt.Errorf("%s: %w", prog, err)
	}
	return string(out), nil
}

func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

// lastMeaningfulLine prefers the last FATAL/ERROR/PANIC line of a tool's
// output, else its last non-empty line.
func lastMeaningfulLine(out string) string {
	var last, severe string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		last = line
		if strings.Contains(line, "FATAL") || strings.Contains(line, "ERROR") || strings.Contains(line, "PANIC") {
			severe = line
		}
	}
	if severe != "" {
		return severe
	}
	return last
}

func lastLogLine(path string) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "no log"
	}
	if len(raw) > 8192 {
		raw = raw[len(raw)-8192:]
	}
	if l := lastMeaningfulLine(string(raw)); l != "" {
		return l
	}
	return "empty log"
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	return port, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

func since(t time.Time) time.Duration {
	return time.Since(t).Round(10 * time.Millisecond)
}
