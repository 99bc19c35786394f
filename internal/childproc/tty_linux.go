package childproc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// What the tests of a terminal planted in a lock directory need: a child
// in a session and a mount namespace of its own, a pseudo-terminal's slave
// put at a file's name, and whether the child acquired it as its
// controlling terminal. Linux gives a session leader without a controlling
// terminal the first tty it opens without O_NOCTTY.

// NewSession returns the SysProcAttr of a child that leads a new session,
// so that it has no controlling terminal (its standard streams are the
// pipes Start or Command's caller gives it), in a mount namespace of its
// own, whose mounts (PlantTerminal's) end with it. Starting the child
// fails with EPERM where the namespace may not be made (no CAP_SYS_ADMIN).
func NewSession() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true, Unshareflags: syscall.CLONE_NEWNS}
}

// ErrNoTerminal wraps the reasons PlantTerminal cannot plant a terminal
// here (no /dev/ptmx, no right to mount), for which a test is skipped.
var ErrNoTerminal = errors.New("no terminal to plant")

// PlantTerminal replaces the file or directory at path by the slave of a
// new pseudo-terminal, and returns its master, which keeps the terminal in
// being while open. A device node made with mknod(2) for the slave will
// not do: Linux opens a pty slave only through its devpts file system, and
// answers EIO elsewhere, before any controlling terminal is set. So the
// slave is bind-mounted over an empty regular file at path, which needs
// the mount namespace of NewSession: the mount is never undone.
func PlantTerminal(path string) (*os.File, error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening /dev/ptmx: %w: %w", err, ErrNoTerminal)
	}
	master := os.NewFile(uintptr(fd), "/dev/ptmx")
	slave, err := slaveName(fd)
	if err == nil {
		err = os.RemoveAll(path)
	}
	if err == nil {
		err = os.WriteFile(path, nil, 0o600)
	}
	if err != nil {
		master.Close()
		return nil, err
	}
	if err := unix.Mount(slave, path, "", unix.MS_BIND, ""); err != nil {
		master.Close()
		return nil, fmt.Errorf("bind-mounting %s on %s: %w: %w", slave, path, err, ErrNoTerminal)
	}
	return master, nil
}

// slaveName unlocks the slave of the pty master fd and returns its name.
func slaveName(fd int) (string, error) {
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		return "", fmt.Errorf("unlocking the pty: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		return "", fmt.Errorf("the pty's number: %w", err)
	}
	return fmt.Sprintf("/dev/pts/%d", n), nil
}

// ControllingTerminal returns nil if this process has no controlling
// terminal, and, if master is not nil, that the terminal behind master is
// nobody's; otherwise an error that says which. Opening /dev/tty fails with
// ENXIO without a controlling terminal; TIOCGSID on a pty master names the
// session of its slave, and fails with ENOTTY while it has none.
func ControllingTerminal(master *os.File) error {
	fd, err := unix.Open("/dev/tty", unix.O_RDONLY|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err == nil {
		unix.Close(fd)
		return errors.New("/dev/tty opens: this process has a controlling terminal")
	}
	if err != unix.ENXIO {
		return fmt.Errorf("opening /dev/tty: %w, want ENXIO (no controlling terminal)", err)
	}
	if master == nil {
		return nil
	}
	sid, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGSID)
	if err == nil {
		return fmt.Errorf("the planted terminal is the controlling terminal of session %d", sid)
	}
	if err != unix.ENOTTY {
		return fmt.Errorf("TIOCGSID on the planted terminal's master: %w, want ENOTTY", err)
	}
	return nil
}

// A Planted is what a child that planted a terminal and made a call says
// of it (WithPlantedTerminal), and what RunPlanted returns.
type Planted struct {
	Skip   string `json:",omitempty"` // why no terminal could be planted
	Before string `json:",omitempty"` // a controlling terminal before the call, or a set-up's failure
	Err    string `json:",omitempty"` // the call's error, "" if it took the file
	After  string `json:",omitempty"` // a controlling terminal after the call
}

// WithPlantedTerminal is the child's side of a planted-terminal test, in a
// child that NewSession started: it checks that the child has no
// controlling terminal, plants one at path, makes call, and says whether
// the call failed and whether the child now has a controlling terminal.
// A terminal the child acquired hangs up when its master closes, which
// sends the child SIGHUP: the child ignores SIGHUP from here on, so as to
// still reply.
func WithPlantedTerminal(path string, call func() error) Planted {
	signal.Ignore(syscall.SIGHUP)
	var r Planted
	if err := ControllingTerminal(nil); err != nil {
		r.Before = err.Error()
		return r
	}
	master, err := PlantTerminal(path)
	if errors.Is(err, ErrNoTerminal) {
		r.Skip = err.Error()
		return r
	} else if err != nil {
		r.Before = "planting: " + err.Error()
		return r
	}
	defer master.Close()
	if err := call(); err != nil {
		r.Err = err.Error()
	}
	if err := ControllingTerminal(master); err != nil {
		r.After = err.Error()
	}
	return r
}

// RunPlanted runs the child s names, in a session and a mount namespace of
// its own (NewSession), and returns the Planted it replied. It skips t
// where the namespace may not be made or no terminal be planted, and
// stops t if the child had a controlling terminal before its call, or
// failed to set up.
func RunPlanted(t testing.TB, s Spec) Planted {
	t.Helper()
	s.SysProcAttr = NewSession()
	cmd := Command(t, s)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if errors.Is(err, syscall.EPERM) && cmd.Process == nil {
		t.Skipf("starting a child in a mount namespace of its own: %v", err)
	}
	if err != nil {
		t.Fatalf("child: %v\n%s\n%s", err, out, stderr.Bytes())
	}
	var r Planted
	if err := Result(out, &r); err != nil {
		t.Fatalf("child printed no result: %s\n%s", out, stderr.Bytes())
	}
	if r.Skip != "" {
		t.Skip(r.Skip)
	}
	if r.Before != "" {
		t.Fatalf("the child is not a session leader without a controlling terminal: %s", r.Before)
	}
	return r
}
