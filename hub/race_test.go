//go:build race

package hub

// raceEnabled reports whether the race detector, whose shadow memory the RSS includes,
// is on.
const raceEnabled = true
