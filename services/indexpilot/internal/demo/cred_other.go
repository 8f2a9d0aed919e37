//go:build !unix

package demo

import (
	"io/fs"
	"os/exec"
)

// setCredential is a no-op where processes cannot switch users this way;
// there the caller is never root and runs the binaries itself.
func setCredential(*exec.Cmd, uint32, uint32) {}

// ownerOf is unknown on this platform.
func ownerOf(fs.FileInfo) (uid, gid uint32, ok bool) { return 0, 0, false }
