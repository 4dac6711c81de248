//go:build !linux

package fsfacts
