// Package events is IndexPilot's wire contract: the envelope every stage
// publishes, the versioned payload types, their topics and the recipes that
// make every event id deterministic.
//
// Nothing here talks to a database or a broker. A payload type never changes
// incompatibly within a version: a breaking change is a new ".vN+1" type on a
// new topic, and the golden fixtures in testdata/ stay until their version is
// retired.
package events
