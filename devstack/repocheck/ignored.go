package repocheck

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// IgnoredErrorRoots are the folders whose Go code IgnoredErrors checks: the
// modules of the workspace.
var IgnoredErrorRoots = []string{"pkg/", "services/", "workflows/", "devstack/", "proto/"}

// IgnoredErrorExempt are files (or folders, ending in "/") not checked by
// IgnoredErrors: none today; an entry needs a comment saying why.
var IgnoredErrorExempt = []string{}

// IgnoredErrors lists, for the Go files (paths relative to root), each
// assignment that throws away the result of a call without a comment saying
// why, on its line or the line directly above. A result thrown away is `_`
// on the left of `=` or `:=` in the last position (where Go puts an error):
// `_ = f.Close()`, `_, _ = w.Write(b)`, `n, _ := strconv.Atoi(s)`. The rule
// is syntactic (the workspace does not depend on golang.org/x/tools for
// type information), so a discarded last result that is not an error (a
// size, a bool) needs its comment too; the comment costs a line and tells
// the reader the value was dropped on purpose.
//
// Test files, generated files (*.pb.go, "Code generated ... DO NOT EDIT."),
// files outside IgnoredErrorRoots and files under IgnoredErrorExempt are not
// checked.
func IgnoredErrors(root string, files []string) ([]string, error) {
	var out []string
	fset := token.NewFileSet()
	for _, f := range files {
		if !checkedForIgnoredErrors(f) {
			continue
		}
		parsed, err := parser.ParseFile(fset, filepath.Join(root, filepath.FromSlash(f)), nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		if ast.IsGenerated(parsed) {
			continue
		}
		commented := map[int]bool{} // lines that hold (part of) a comment
		for _, g := range parsed.Comments {
			for _, c := range g.List {
				for l := fset.Position(c.Pos()).Line; l <= fset.Position(c.End()).Line; l++ {
					commented[l] = true
				}
			}
		}
		ast.Inspect(parsed, func(n ast.Node) bool {
			a, ok := n.(*ast.AssignStmt)
			if !ok || (a.Tok != token.ASSIGN && a.Tok != token.DEFINE) || len(a.Rhs) != 1 {
				return true
			}
			call, ok := ast.Unparen(a.Rhs[0]).(*ast.CallExpr)
			if !ok || isConversion(call) {
				return true
			}
			if last, ok := a.Lhs[len(a.Lhs)-1].(*ast.Ident); !ok || last.Name != "_" {
				return true
			}
			if len(a.Lhs) > 1 && lastResultNotAnError(calleeText(call)) {
				return true
			}
			start, end := fset.Position(a.Pos()).Line, fset.Position(a.End()).Line
			if commented[start-1] || commented[start] || commented[end] {
				return true
			}
			out = append(out, fmt.Sprintf("%s:%d: %s throws away a result of %s without a comment saying why (handle the error, or say why ignoring it is safe)",
				f, start, lhsText(a), calleeText(call)))
			return true
		})
	}
	return out, nil
}

func checkedForIgnoredErrors(f string) bool {
	if !strings.HasSuffix(f, ".go") || strings.HasSuffix(f, "_test.go") || strings.HasSuffix(f, ".pb.go") {
		return false
	}
	if slices.Contains(strings.Split(path.Dir(f), "/"), "testdata") {
		return false
	}
	if !slices.ContainsFunc(IgnoredErrorRoots, func(r string) bool { return strings.HasPrefix(f, r) }) {
		return false
	}
	return !slices.ContainsFunc(IgnoredErrorExempt, func(e string) bool {
		return f == e || (strings.HasSuffix(e, "/") && strings.HasPrefix(f, e))
	})
}

// NotAnErrorLast are callees (as written: package.Func, or .Method for any
// receiver) whose last result is known not to be an error (a found or ok
// bool, the rest of the input, a column, a cancel func): `x, _ := f()`
// discarding it drops no error.
var NotAnErrorLast = []string{
	"strings.Cut", "strings.CutPrefix", "strings.CutSuffix", "bytes.Cut", "bytes.CutPrefix", "bytes.CutSuffix",
	"pem.Decode", "utf8.DecodeRune", "utf8.DecodeRuneInString", "utf8.DecodeLastRune", "utf8.DecodeLastRuneInString",
	"context.WithCancel", "context.WithTimeout", "context.WithDeadline",
	"workflow.WithCancel", "workflow.NewDisconnectedContext",
	"demarchev1.RegionOf",
	".FieldPos", ".Password", ".GetKeyword", ".GetKeywordList", ".GetInt64", ".GetBool",
}

func lastResultNotAnError(callee string) bool {
	return slices.ContainsFunc(NotAnErrorLast, func(n string) bool {
		return callee == n || (strings.HasPrefix(n, ".") && strings.HasSuffix(callee, n))
	})
}

// isConversion reports the obvious type conversions ([]byte(s), string(b)),
// which return no error: `_ = []byte(s)` is not a call that can fail.
func isConversion(call *ast.CallExpr) bool {
	switch fn := ast.Unparen(call.Fun).(type) {
	case *ast.ArrayType, *ast.MapType, *ast.ChanType, *ast.FuncType, *ast.InterfaceType:
		return true
	case *ast.Ident:
		return fn.Name == "string" || fn.Name == "byte" || fn.Name == "rune"
	}
	return false
}

func lhsText(a *ast.AssignStmt) string {
	var names []string
	for _, e := range a.Lhs {
		if id, ok := e.(*ast.Ident); ok {
			names = append(names, id.Name)
		} else {
			names = append(names, "…")
		}
	}
	return "`" + strings.Join(names, ", ") + " " + a.Tok.String() + "`"
}

func calleeText(call *ast.CallExpr) string {
	var b strings.Builder
	var walk func(e ast.Expr)
	walk = func(e ast.Expr) {
		switch x := e.(type) {
		case *ast.Ident:
			b.WriteString(x.Name)
		case *ast.SelectorExpr:
			walk(x.X)
			b.WriteString("." + x.Sel.Name)
		case *ast.CallExpr:
			walk(x.Fun)
			b.WriteString("(…)")
		case *ast.IndexExpr:
			walk(x.X)
			b.WriteString("[…]")
		case *ast.ParenExpr:
			walk(x.X)
		default:
			b.WriteString("…")
		}
	}
	walk(call.Fun)
	return b.String()
}
