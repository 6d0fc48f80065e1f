// Command lua-health runs an Argo CD resource health script the way Argo CD's
// application controller does, so VectorPipe's health checks can be tested with
// the very interpreter Argo CD embeds (gopher-lua, a Lua 5.1 VM).
//
// What it reproduces (read from Argo CD's util/lua package; no code copied):
//
//   - A fresh VM per evaluation. Scripts from argocd-cm run with the standard
//     libraries switched OFF (lua.Options{SkipOpenLibs: true}) unless
//     resource.customizations.useOpenLibs.<group>_<kind> is "true" (-open-libs
//     here). Either way Argo CD then opens `package` (require), the base library
//     and `table`, and preloads a "safe" os module that only `require("os")`
//     reaches and that holds just os.time and os.date. So a health script from
//     argocd-cm has no `string`, `math`, `io`, `debug`, `coroutine`, no global
//     `os`, and strings have no methods (s:sub(...) raises an error).
//   - The resource is the global `obj`: JSON objects become Lua tables keyed by
//     strings, arrays become 1-based sequences (nil elements are skipped, as
//     LTable.Append does), every JSON number becomes a Lua number, null is nil.
//   - A 1 s deadline on the VM's context.
//   - The value on top of the stack after the chunk returns is the result. A
//     table is JSON-encoded (an empty table encodes as []), anything else but
//     nil is an error.
//
// Usage:
//
//	lua-health [-open-libs] [-argocd] [-batch] SCRIPT.lua [OBJECT.json|-]
//
// The object is read from the file or stdin ("-", the default). Output is one
// line of JSON on stdout:
//
//   - default: the table the script returned, as JSON (null for nil).
//   - -argocd: the health Argo CD derives from it, {"status":..,"message":..}:
//     an unknown status becomes Unknown/"Lua returned an invalid health status",
//     a nil result or a table whose fields do not decode as strings becomes an
//     empty status, exactly the cases Argo CD's ExecuteHealthLua handles.
//   - -batch: stdin/the file holds a JSON array of objects; the output is an
//     array of {"result": ...} or {"error": "..."}, one per object, each object
//     evaluated in its own fresh VM.
//
// Exit status: 0 on success, 1 when the script raises an error or returns a
// non-table (message on stderr), 2 on bad usage or unreadable input.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// validStatuses are the health codes Argo CD accepts from a Lua script
// (gitops-engine's health.HealthStatusCode values checked by isValidHealthStatusCode).
var validStatuses = map[string]bool{
	"Unknown":     true,
	"Progressing": true,
	"Suspended":   true,
	"Healthy":     true,
	"Degraded":    true,
	"Missing":     true,
}

const invalidHealthStatus = "Lua returned an invalid health status"

const scriptTimeout = 1 * time.Second

func main() {
	openLibs := flag.Bool("open-libs", false, "open every standard library, like resource.customizations.useOpenLibs.<group>_<kind>: \"true\"")
	argocd := flag.Bool("argocd", false, "print the health Argo CD derives from the result instead of the raw table")
	batch := flag.Bool("batch", false, "input is a JSON array of objects; print an array of {result|error}")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: %s [-open-libs] [-argocd] [-batch] SCRIPT.lua [OBJECT.json|-]\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() < 1 || flag.NArg() > 2 {
		flag.Usage()
		os.Exit(2)
	}
	script, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		fail(2, err)
	}
	input, err := readInput(flag.Arg(1))
	if err != nil {
		fail(2, err)
	}

	if *batch {
		var objects []any
		if err := decodeJSON(input, &objects); err != nil {
			fail(2, fmt.Errorf("batch input must be a JSON array of objects: %w", err))
		}
		out := make([]map[string]any, 0, len(objects))
		for _, o := range objects {
			obj, ok := o.(map[string]any)
			if !ok {
				out = append(out, map[string]any{"error": "batch element is not a JSON object"})
				continue
			}
			res, err := evaluate(string(script), obj, *openLibs, *argocd)
			if err != nil {
				out = append(out, map[string]any{"error": err.Error()})
			} else {
				out = append(out, map[string]any{"result": res})
			}
		}
		emit(out)
		return
	}

	var obj map[string]any
	if err := decodeJSON(input, &obj); err != nil {
		fail(2, fmt.Errorf("object must be a JSON object: %w", err))
	}
	res, err := evaluate(string(script), obj, *openLibs, *argocd)
	if err != nil {
		fail(1, err)
	}
	emit(res)
}

func readInput(path string) ([]byte, error) {
	if path == "" || path == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(path)
}

// decodeJSON decodes like encoding/json into interface values (numbers as
// float64), which is what Argo CD's decodeValue turns into Lua numbers; a
// Kubernetes unstructured object holds int64/float64, which decode the same way.
func decodeJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

func emit(v any) {
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		fail(1, err)
	}
}

func fail(code int, err error) {
	fmt.Fprintf(os.Stderr, "lua-health: %v\n", err)
	os.Exit(code)
}

// evaluate runs script against obj in a fresh VM and returns either the raw
// result (a JSON-ready value) or, with argocd, the {status, message} Argo CD
// would record.
func evaluate(script string, obj map[string]any, openLibs, argocd bool) (any, error) {
	l := newVM(openLibs)
	defer l.Close()

	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	l.SetContext(ctx)

	l.SetGlobal("obj", toLua(l, obj))

	fn, err := l.LoadString(script)
	if err != nil {
		return nil, err
	}
	l.Push(fn)
	if err := l.PCall(0, lua.MultRet, nil); err != nil {
		var apiErr *lua.ApiError
		if errors.As(err, &apiErr) && apiErr.Type == lua.ApiErrorRun {
			apiErr.StackTrace = "" // Argo CD strips the trace before showing the error
			return nil, apiErr
		}
		return nil, err
	}

	ret := l.Get(-1) // like Argo CD: the top of the stack, i.e. the last value returned
	var raw any
	switch ret.Type() {
	case lua.LTNil:
		raw = nil
	case lua.LTTable:
		raw, err = fromLua(ret, 0)
		if err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("expect table output from Lua script, not %s", ret.Type().String())
	}
	if !argocd {
		return raw, nil
	}
	return argoHealth(raw)
}

// newVM opens the libraries Argo CD opens for a health script.
func newVM(openLibs bool) *lua.LState {
	l := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			panic(err)
		}
	}
	// The safe os: reachable through require("os") only. (Argo CD also calls a
	// module registration for it under the name of the already-loaded `table`
	// module, which adds nothing; with open libraries the full os stays global.)
	safe := safeOsFuncs()
	l.PreloadModule(lua.OsLibName, func(l *lua.LState) int {
		l.Push(l.SetFuncs(l.NewTable(), safe))
		return 1
	})
	return l
}

// safeOsFuncs takes os.time and os.date from gopher-lua's own os library (the
// implementation Argo CD's safe os mirrors) and nothing else from it.
func safeOsFuncs() map[string]lua.LGFunction {
	scratch := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer scratch.Close()
	scratch.Push(scratch.NewFunction(lua.OpenOs))
	scratch.Push(lua.LString(lua.OsLibName))
	scratch.Call(1, 1)
	mod := scratch.CheckTable(-1)
	out := map[string]lua.LGFunction{}
	for _, name := range []string{"time", "date"} {
		f, ok := mod.RawGetString(name).(*lua.LFunction)
		if !ok || f.GFunction == nil {
			panic("gopher-lua os library lacks " + name)
		}
		out[name] = f.GFunction
	}
	return out
}

// toLua converts a decoded JSON value the way Argo CD's decodeValue does.
func toLua(l *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(x)
	case float64:
		return lua.LNumber(x)
	case json.Number:
		return lua.LString(x)
	case string:
		return lua.LString(x)
	case []any:
		t := l.CreateTable(len(x), 0)
		for _, item := range x {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(x))
		for k, item := range x {
			t.RawSetH(lua.LString(k), toLua(l, item))
		}
		return t
	}
	return lua.LNil
}

const maxDepth = 100

// fromLua turns a Lua value into a JSON-ready Go value with the rules of the
// JSON encoder Argo CD uses on the result: a table whose keys are exactly
// 1..n is an array, a table with only string keys is an object, an empty table
// is an empty array, and anything else (mixed keys, functions, NaN) is an error.
func fromLua(v lua.LValue, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("cannot encode a nested table deeper than 100 levels (recursive table?)")
	}
	switch x := v.(type) {
	case *lua.LNilType:
		return nil, nil
	case lua.LBool:
		return bool(x), nil
	case lua.LNumber:
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("cannot encode number %v as JSON", f)
		}
		return f, nil
	case lua.LString:
		return string(x), nil
	case *lua.LTable:
		var strKeys []string
		numKeys := 0
		var bad error
		x.ForEach(func(k, _ lua.LValue) {
			switch kk := k.(type) {
			case lua.LString:
				strKeys = append(strKeys, string(kk))
			case lua.LNumber:
				numKeys++
			default:
				bad = fmt.Errorf("cannot encode a table key of type %s", k.Type().String())
			}
		})
		if bad != nil {
			return nil, bad
		}
		if len(strKeys) == 0 {
			n := x.MaxN()
			if n != numKeys {
				return nil, errors.New("cannot encode a sparse or non-integer-keyed array")
			}
			arr := make([]any, 0, n)
			for i := 1; i <= n; i++ {
				item, err := fromLua(x.RawGetInt(i), depth+1)
				if err != nil {
					return nil, err
				}
				arr = append(arr, item)
			}
			return arr, nil
		}
		if numKeys > 0 {
			return nil, errors.New("cannot encode a table with mixed key types")
		}
		sort.Strings(strKeys)
		obj := make(map[string]any, len(strKeys))
		for _, k := range strKeys {
			item, err := fromLua(x.RawGetString(k), depth+1)
			if err != nil {
				return nil, err
			}
			obj[k] = item
		}
		return obj, nil
	}
	return nil, fmt.Errorf("cannot encode a value of type %s", v.Type().String())
}

// argoHealth derives the health status the way Argo CD's ExecuteHealthLua does
// from the encoded result.
func argoHealth(raw any) (map[string]string, error) {
	empty := map[string]string{"status": "", "message": ""}
	if raw == nil {
		return empty, nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	var hs struct {
		Status  string `json:"status"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(b, &hs); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return empty, nil
		}
		return nil, err
	}
	if !validStatuses[hs.Status] {
		return map[string]string{"status": "Unknown", "message": invalidHealthStatus}, nil
	}
	return map[string]string{"status": hs.Status, "message": hs.Message}, nil
}
