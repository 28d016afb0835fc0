package agent

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// How a virtio-serial port behaves (drivers/char/virtio_console.c): while
// no host program is connected to its chardev, read returns 0 (EOF) at
// once and write blocks; data the host sends while the guest has the port
// closed is discarded. So the agent keeps the port open, and when reads
// return EOF it polls again with exponential backoff instead of spinning;
// the request a host writes meanwhile waits in the port's queue. It
// reopens the port when reading fails, or when EOF has lasted
// reopenAfter, and rediscovers it when it is gone.

// findSerialPort returns the device node of the virtio-serial port named
// name: /sys/class/virtio-ports/vportNpM/name holds the name, and
// devtmpfs provides /dev/vportNpM. ok is false when there is none (yet).
func findSerialPort(sysDir, devDir, name string) (string, bool) {
	names, _ := filepath.Glob(filepath.Join(sysDir, "class", "virtio-ports", "*", "name"))
	for _, p := range names {
		b, err := os.ReadFile(p)
		if err != nil || strings.TrimSpace(string(b)) != name {
			continue
		}
		dev := filepath.Join(devDir, filepath.Base(filepath.Dir(p)))
		if _, err := os.Stat(dev); err == nil {
			return dev, true
		}
	}
	return "", false
}

// openSerialPort opens a virtio-serial port for reading and writing.
// Go polls it (it supports poll), so reads honour deadlines and Close.
func openSerialPort(path string) (io.ReadWriteCloser, error) {
	return os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
}

// backoff is the delay schedule between polls of an idle port.
type backoff struct {
	Min, Max time.Duration
}

func (b backoff) next(d time.Duration) time.Duration {
	if d < b.Min {
		return b.Min
	}
	return min(2*d, b.Max)
}

// errIdle tells the serial loop that the port has been at EOF for
// reopenAfter: reopen it.
var errIdle = errors.New("the port has been idle; reopening it")

// patientReader turns a port's EOFs (no host connected) into waiting: it
// polls again after a growing delay, so Serve sees one unbroken stream.
type patientReader struct {
	ctx     context.Context
	r       io.Reader
	sleep   func(context.Context, time.Duration) error
	backoff backoff
	// reopenAfter: after this much waiting in a row, Read returns errIdle.
	reopenAfter time.Duration

	delay  time.Duration // the next wait
	waited time.Duration // waited since the last data
}

func (p *patientReader) Read(b []byte) (int, error) {
	for {
		n, err := p.r.Read(b)
		if n > 0 {
			p.delay, p.waited = 0, 0
			return n, nil
		}
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, syscall.EAGAIN) {
			return 0, err
		}
		if p.reopenAfter > 0 && p.waited >= p.reopenAfter {
			p.waited = 0
			return 0, errIdle
		}
		p.delay = p.backoff.next(p.delay)
		if err := p.sleep(p.ctx, p.delay); err != nil {
			return 0, err
		}
		p.waited += p.delay
	}
}

// stream joins a reader and a writer into an io.ReadWriter.
type stream struct {
	io.Reader
	io.Writer
}

// serveSerial finds the port named agentproto.SerialPortName, serves it,
// and starts over when it fails or goes away, until ctx ends.
func (s *server) serveSerial(ctx context.Context) {
	waiting := false
	for ctx.Err() == nil {
		path, ok := findSerialPort(s.sysDir, s.devDir, agentproto.SerialPortName)
		if !ok {
			if !waiting {
				s.log.Info("no virtio-serial port named "+agentproto.SerialPortName+" yet; still looking",
					"dir", filepath.Join(s.sysDir, "class", "virtio-ports"))
				waiting = true
			}
			if s.sleep(ctx, s.discoverEvery) != nil {
				return
			}
			continue
		}
		waiting = false
		s.found("virtio-serial", path)
		s.servePort(ctx, path)
	}
}

// servePort opens path and serves it, reopening it after failures with
// backoff, and returns when the port is gone (or ctx ends).
func (s *server) servePort(ctx context.Context, path string) {
	var delay time.Duration
	for ctx.Err() == nil {
		port, err := s.openSerial(path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENXIO) {
				s.log.Warn("virtio-serial port is gone; looking for it again", "path", path, "err", err)
				return
			}
			hint := ""
			if errors.Is(err, syscall.EBUSY) {
				hint = "another process has the port open: is a second banger-agent running?"
			}
			s.log.Error("cannot open the virtio-serial port; retrying", "path", path, "err", err, "hint", hint)
			delay = s.idle.next(delay)
			if s.sleep(ctx, delay) != nil {
				return
			}
			continue
		}
		s.log.Info("serving virtio-serial port", "path", path)
		// Closing the port is what interrupts a read blocked on it.
		stop := context.AfterFunc(ctx, func() { port.Close() })
		pr := &patientReader{ctx: ctx, r: port, sleep: s.sleep, backoff: s.idle, reopenAfter: s.reopenAfter}
		err = s.serveChannel(ctx, stream{pr, port})
		if stop() {
			port.Close()
		}
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, errIdle):
			s.log.Debug("no host on the virtio-serial port for a while; reopening it", "path", path)
			delay = 0
		default:
			s.log.Warn("virtio-serial port failed; reopening it", "path", path, "err", err)
			delay = s.idle.next(delay)
			if s.sleep(ctx, delay) != nil {
				return
			}
		}
	}
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
