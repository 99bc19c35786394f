// Package docscheck has no code: its tests keep docs/ true to the tree
// (docs_test.go), so that a file moved or added cannot leave the docs
// naming what is not there, or missing what is.
package docscheck
