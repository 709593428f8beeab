package main

// Runs a health customization as Argo CD's controller does (argo-cd
// util/lua/lua.go, VM.runLua and ExecuteHealthLua, read at commit 00101b7): a
// fresh gopher-lua state per call; the standard libraries only when the
// customization sets useOpenLibs, else just package, base, table and a reduced
// os; the object as the global `obj`; a one-second limit; the script's returned
// table read as {status, message}; a status outside Argo CD's codes reads
// Unknown; an error reads Unknown with the error as the message (gitops-engine
// pkg/health GetResourceHealth).

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// HealthScript is one resource.customizations entry.
type HealthScript struct {
	Lua         string
	UseOpenLibs bool
}

func runHealthLua(script HealthScript, object map[string]any) (Health, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: !script.UseOpenLibs})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openReducedOs},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return Health{}, fmt.Errorf("opening %s: %w", lib.name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, object))
	if err := l.DoString(script.Lua); err != nil {
		return Health{}, err
	}
	ret := l.Get(-1)
	table, ok := ret.(*lua.LTable)
	if !ok {
		return Health{}, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
	var h Health
	for key, dst := range map[string]*string{"status": &h.Status, "message": &h.Message} {
		switch v := table.RawGetString(key).(type) {
		case lua.LString:
			*dst = string(v)
		case *lua.LNilType:
		default:
			// Argo CD decodes the table through JSON into string fields: anything else fails there.
			return Health{}, fmt.Errorf("health %s is a %s, not a string", key, v.Type())
		}
	}
	if !healthCodes[h.Status] {
		return Health{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return h, nil
}

// toLua converts decoded JSON the way Argo CD's decodeValue does: arrays become
// sequences, objects tables, numbers LNumber, null nil.
func toLua(l *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case bool:
		return lua.LBool(x)
	case float64:
		return lua.LNumber(x)
	case int64:
		return lua.LNumber(x)
	case string:
		return lua.LString(x)
	case json.Number:
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

// openReducedOs stands for Argo CD's "safe" os library: time and clock only,
// nothing that touches the process or the file system.
func openReducedOs(l *lua.LState) int {
	mod := l.RegisterModule(lua.OsLibName, map[string]lua.LGFunction{
		"time":  func(l *lua.LState) int { l.Push(lua.LNumber(time.Now().Unix())); return 1 },
		"clock": func(l *lua.LState) int { l.Push(lua.LNumber(float64(time.Now().UnixNano()) / 1e9)); return 1 },
	})
	l.Push(mod)
	return 1
}

// argoLuaHealth is the health Argo CD shows with the customization installed.
func argoLuaHealth(script HealthScript, object map[string]any) Health {
	h, err := runHealthLua(script, object)
	if err != nil {
		return Health{Status: "Unknown", Message: err.Error()}
	}
	return h
}
