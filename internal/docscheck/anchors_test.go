package docscheck

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// TestDocsLinksNameExistingSections (review 17) checks every link of
// docs/*.md and README.md to a section of a doc ("file.md#anchor",
// "#anchor") against that doc's headings, slugged as GitHub does, and every
// "docs/X.md, \"Section\"" that Go comments of internal/ and cmd/ cite
// against X's headings. Commit 7e7b1a9 cites performance.md's "Round
// seven" (docs/cli.md links #round-seven-issue-12-2026-12-02), which does
// not exist: the measurements that the CPU pin and internal/oneproc stand
// on are nowhere.
func TestDocsLinksNameExistingSections(t *testing.T) {
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs, filepath.Join(root, "README.md"))
	link := regexp.MustCompile(`\]\(([a-zA-Z0-9_./-]*\.md)?#([^)\s]+)\)`)
	for _, d := range docs {
		for _, m := range link.FindAllStringSubmatch(readFile(t, d), -1) {
			target := d
			if m[1] != "" {
				target = filepath.Join(filepath.Dir(d), m[1])
			}
			if _, err := os.Stat(target); err != nil {
				continue // TestDocsNameExistingFiles's business
			}
			if !anchors(t, target)[m[2]] {
				t.Errorf("%s links %s#%s: no such section", filepath.Base(d), filepath.Base(target), m[2])
			}
		}
	}
	cite := regexp.MustCompile(`docs/([a-z]+\.md), "([^"]+)"`)
	for _, dir := range []string{"internal", "cmd"} {
		filepath.WalkDir(filepath.Join(root, dir), func(path string, de os.DirEntry, err error) error {
			if err != nil || de.IsDir() || !strings.HasSuffix(path, ".go") {
				return err
			}
			for _, m := range cite.FindAllStringSubmatch(readFile(t, path), -1) {
				doc := filepath.Join(root, "docs", m[1])
				if _, err := os.Stat(doc); err != nil {
					continue
				}
				if !headingStarts(t, doc, m[2]) {
					rel, _ := filepath.Rel(root, path)
					t.Errorf("%s cites docs/%s, %q: no section of that name", rel, m[1], m[2])
				}
			}
			return nil
		})
	}
}

// headings returns the headings of markdown file path.
func headings(t *testing.T, path string) []string {
	t.Helper()
	var hs []string
	inCode := false
	for line := range strings.Lines(readFile(t, path)) {
		line = strings.TrimRight(line, "\n")
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if !inCode && strings.HasPrefix(line, "#") {
			hs = append(hs, strings.TrimSpace(strings.TrimLeft(line, "#")))
		}
	}
	return hs
}

// anchors returns GitHub's anchors for the headings of path.
func anchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	a := map[string]bool{}
	for _, h := range headings(t, path) {
		var b strings.Builder
		for _, r := range strings.ToLower(h) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		s := b.String()
		for i := 1; a[s]; i++ { // GitHub numbers repeated headings
			if u := s + "-" + strconv.Itoa(i); !a[u] {
				s = u
			}
		}
		a[s] = true
	}
	return a
}

// headingStarts reports whether a heading of path starts with name, or is
// it case aside ("Round six" is "### Round six (issue 12, 2026-12-02)").
func headingStarts(t *testing.T, path, name string) bool {
	t.Helper()
	for _, h := range headings(t, path) {
		if strings.HasPrefix(strings.ToLower(h), strings.ToLower(name)) {
			return true
		}
	}
	return false
}
