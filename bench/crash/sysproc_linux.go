package main

import "syscall"

// sysProcAttr kills a child if the harness dies, so no pooler or simulator
// outlives a crashed or interrupted run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
