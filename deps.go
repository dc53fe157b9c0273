package main

// Temporary: keeps every module of the design card required in go.mod while
// the packages that use them are written. Removed once they import them.
import (
	_ "github.com/BurntSushi/toml"
	_ "github.com/julienschmidt/httprouter"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/vmware/govmomi/simulator"
	_ "go.etcd.io/bbolt"
	_ "golang.org/x/crypto/bcrypt"
	_ "golang.org/x/sync/errgroup"
)
