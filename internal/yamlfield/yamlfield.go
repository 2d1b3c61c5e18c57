// Package yamlfield makes YAML errors name the field they are about. It
// maps each line of a document to the path of the field on it
// ("peers[1].gateways[0].publicKey") and back, decodes strictly (unknown
// fields are an error) and rewrites yaml.v3's "line N:" references as
// "path (line N):".
package yamlfield

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"

	"gopkg.in/yaml.v3"
)

// Index maps the lines of one YAML document to field paths and back. The
// zero Index knows no lines.
type Index struct {
	byLine map[int]string
	byPath map[string]int
}

// NewIndex indexes doc. A document that does not parse gives an empty
// index.
func NewIndex(doc []byte) Index {
	ix := Index{byLine: map[int]string{}, byPath: map[string]int{}}
	var root yaml.Node
	if yaml.Unmarshal(doc, &root) != nil {
		return ix
	}
	ix.walk(&root, "")
	return ix
}

func (ix Index) walk(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			ix.walk(c, path)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			ix.byLine[k.Line] = p // a key names its line better than its list item
			ix.byPath[p] = k.Line
			ix.walk(v, p)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if _, ok := ix.byLine[c.Line]; !ok {
				ix.byLine[c.Line] = p
			}
			ix.byPath[p] = c.Line
			ix.walk(c, p)
		}
	}
}

// Line returns the line of the field at path, or 0 when the document has
// no such field.
func (ix Index) Line(path string) int { return ix.byPath[path] }

// Path returns the path of the field on line, or "" when none is there.
func (ix Index) Path(line int) string { return ix.byLine[line] }

var lineRef = regexp.MustCompile(`line (\d+):`)

// Rewrite replaces every "line N:" in msg with "path (line N):" where the
// index knows the field on line N.
func (ix Index) Rewrite(msg string) string {
	return lineRef.ReplaceAllStringFunc(msg, func(m string) string {
		line, _ := strconv.Atoi(lineRef.FindStringSubmatch(m)[1])
		if p := ix.byLine[line]; p != "" {
			return fmt.Sprintf("%s (line %d):", p, line)
		}
		return m
	})
}

// DecodeStrict decodes doc into v, rejecting fields v does not have. An
// empty document leaves v unchanged. Errors name the field and line.
func DecodeStrict(doc []byte, v any) error {
	if len(bytes.TrimSpace(doc)) == 0 {
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return errors.New(NewIndex(doc).Rewrite(err.Error()))
	}
	return nil
}
