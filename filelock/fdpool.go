package filelock

import "sync"

// The process's descriptor limit (RLIMIT_NOFILE) is shared by every Manager
// in it, so a Manager that runs out of descriptors must be able to take idle
// ones from the others: otherwise one Manager's cache of idle descriptors
// could starve another's Lock forever. liveCaches is the one piece of
// package-level state in filelock that changes what a call does, and it
// exists for that reason alone: it lists the descriptor caches of the open
// Managers, and nothing else. (crc.go's counter only chooses how checksums
// are computed.)
var liveCaches struct {
	mu     sync.Mutex
	caches map[*fdCache]struct{}
}

func registerCache(c *fdCache) {
	liveCaches.mu.Lock()
	defer liveCaches.mu.Unlock()
	if liveCaches.caches == nil {
		liveCaches.caches = make(map[*fdCache]struct{})
	}
	liveCaches.caches[c] = struct{}{}
}

func unregisterCache(c *fdCache) {
	liveCaches.mu.Lock()
	defer liveCaches.mu.Unlock()
	delete(liveCaches.caches, c)
}

// evictAnywhere closes idle descriptors of the other Managers in the
// process, up to half of each one's, and returns how many it closed. The
// caller must not hold self.mu, nor any other cache's: a cache's mutex is
// never held while another's is taken, so no two Managers can deadlock.
func evictAnywhere(self *fdCache) int {
	liveCaches.mu.Lock()
	others := make([]*fdCache, 0, len(liveCaches.caches))
	for c := range liveCaches.caches {
		if c != self {
			others = append(others, c)
		}
	}
	liveCaches.mu.Unlock()
	closed := 0
	for _, c := range others {
		c.mu.Lock()
		closed += c.evict(max(1, len(c.open)/2))
		c.mu.Unlock()
	}
	return closed
}

// freeDescriptors closes idle lock file descriptors, this Manager's first
// and then those of the process's other Managers, for an open of the
// registry or of a lock file that ran out of descriptors: Lock evicts by
// itself (openFD), and the registry and OpenLockFile must not fail while
// the cache holds descriptors it could give back. It reports whether it
// closed any.
func (m *Manager) freeDescriptors() bool {
	c := &m.cache
	c.mu.Lock()
	n := c.evict(max(1, len(c.open)/2))
	c.mu.Unlock()
	return n > 0 || evictAnywhere(c) > 0
}
