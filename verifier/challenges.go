package verifier

import "sync"

// challengeInfo is what a challenge needs of a node: the round it is
// issued in, the node's policy, and where its list resumes.
type challengeInfo struct {
	round    uint64
	policyID string
	offset   uint64
	eventLog bool
}

// challengeInfos remembers, per node, the challengeInfo of the node as this
// replica last read or wrote it, so that a challenge costs no store read:
// a round writes what the next challenge needs. It is a hint, never the
// truth: a round's evidence is judged only if the challenge is still what
// the node's row, read and held for the round, says (checkChallenge), and a
// challenge the row disagrees with is refused as used (the attester asks
// again) and forgotten here. So a node changed by another replica (a round,
// an enrollment, a new policy, removed and added again) costs at most one
// refused challenge.
type challengeInfos struct {
	mu sync.Mutex
	m  map[string]challengeInfo
}

// maxChallengeInfos bounds the nodes remembered (a fleet's worth).
const maxChallengeInfos = 1 << 18

func (c *challengeInfos) get(node string) (challengeInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.m[node]
	return i, ok
}

func (c *challengeInfos) put(node string, i challengeInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxChallengeInfos {
		c.m = make(map[string]challengeInfo)
	}
	c.m[node] = i
}

func (c *challengeInfos) forget(node string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, node)
}
