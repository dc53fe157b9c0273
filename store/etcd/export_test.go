package etcd

// SetPageSize sets how many keys one range request asks for.
func SetPageSize(e *Engine, n int) { e.pageSize = n }

// Requests returns how many range requests and Txns transactions sent.
func Requests(e *Engine) (gets, txns int64) { return e.gets.Load(), e.txns.Load() }

// SetAfterSnapshot makes Follow call f(n) after its n-th snapshot, before
// it watches.
func SetAfterSnapshot(e *Engine, f func(n int)) { e.afterSnapshot = f }

// NewEngineSharing opens another engine (another replica) on e's etcd and prefix.
func NewEngineSharing(e *Engine) *Engine {
	o, err := Open(e.cfg)
	if err != nil {
		panic(err)
	}
	return o
}
