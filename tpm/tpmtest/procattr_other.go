//go:build !linux

package tpmtest

import "syscall"

func procAttr() *syscall.SysProcAttr { return nil }
