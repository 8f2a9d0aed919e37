//go:build unix

package demo

import (
	"io/fs"
	"os/exec"
	"syscall"
)

// setCredential makes cmd run as uid/gid with no supplementary groups.
func setCredential(cmd *exec.Cmd, uid, gid uint32) {
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}},
	}
}

// ownerOf returns the owner and group of a file.
func ownerOf(fi fs.FileInfo) (uid, gid uint32, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return st.Uid, st.Gid, true
}
