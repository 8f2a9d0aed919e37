// Package integration runs IndexPilot's stages together, each on its own
// bus connection as separate processes would be, over kfake (a
// Kafka-protocol broker in process, through the same watermill-kafka code
// path production uses) against the real PostgreSQL.
package integration
