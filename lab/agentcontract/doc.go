// Package agentcontract holds only a test: it proves that every agent
// config the lab writes parses and completes with the agent's own parser.
// It is a separate package so that the lab builds and tests while the agent
// package is changing.
package agentcontract
