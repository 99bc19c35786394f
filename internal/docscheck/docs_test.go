package docscheck

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// root is the repository's root, from this package's directory.
const root = "../.."

// TestFileMapNamesEveryFile checks that docs/design.md's file map names
// every Go file of filelock, as it says it does, and that its package
// table names every package of the root module.
func TestFileMapNamesEveryFile(t *testing.T) {
	doc := readFile(t, filepath.Join(root, "docs", "design.md"))
	files, err := filepath.Glob(filepath.Join(root, "filelock", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if name := filepath.Base(f); !strings.Contains(doc, "`"+name+"`") {
			t.Errorf("docs/design.md's file map does not name filelock/%s", name)
		}
	}
	for _, pkg := range rootPackages(t) {
		if !strings.Contains(doc, "`"+pkg+"`") && !strings.Contains(doc, "`"+filepath.Base(pkg)+"`") {
			t.Errorf("docs/design.md's package table does not name %s", pkg)
		}
	}
}

// rootPackages lists the directories of the root module that hold Go
// files, relative to the root: its packages (etcdlock is a module of its
// own, with its own docs/etcd.md).
func rootPackages(t *testing.T) []string {
	t.Helper()
	var pkgs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel == "etcdlock" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && rel != "." {
				return filepath.SkipDir
			}
			if goFiles, _ := filepath.Glob(filepath.Join(path, "*.go")); len(goFiles) > 0 && rel != "." {
				pkgs = append(pkgs, filepath.ToSlash(rel))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < 5 {
		t.Fatalf("found only %d packages under %s: %v", len(pkgs), root, pkgs)
	}
	return pkgs
}

// TestDocsNameExistingFiles checks every path of a source, script or doc
// file that docs/*.md and README.md name in backquotes.
func TestDocsNameExistingFiles(t *testing.T) {
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs, filepath.Join(root, "README.md"))
	re := regexp.MustCompile("`([a-zA-Z0-9_.-]+(?:/[a-zA-Z0-9_.-]+)+\\.(?:go|txtar|md|sh|conf))`")
	for _, d := range docs {
		for _, m := range re.FindAllStringSubmatch(readFile(t, d), -1) {
			if _, err := os.Stat(filepath.Join(root, m[1])); err != nil {
				t.Errorf("%s names %s, which does not exist", filepath.Base(d), m[1])
			}
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
