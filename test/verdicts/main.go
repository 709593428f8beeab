// Command verdicts prints, as one JSON line, what kubectl rollout status,
// kstatus and Argo CD's health say of a workload:
//
//	verdicts once  --kubeconfig K --kind Deployment --namespace NS --name N [--lua DIR]
//	verdicts once  --object FILE|- [--lua DIR]
//	verdicts watch --kubeconfig K --kind StatefulSet --namespace NS --name N [--lua DIR] [--objects]
//	verdicts argocd-cm --lua DIR
//
// watch prints a line for every state of the object the apiserver sends, until
// it is stopped. --lua is integrations/argocd/lua: with it each line also has the
// health Argo CD shows with the shipped customizations installed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
)

var resources = map[string]schema.GroupVersionResource{
	"Deployment":  {Group: "apps", Version: "v1", Resource: "deployments"},
	"StatefulSet": {Group: "apps", Version: "v1", Resource: "statefulsets"},
	"DaemonSet":   {Group: "apps", Version: "v1", Resource: "daemonsets"},
}

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "verdicts:", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: verdicts once|watch|argocd-cm [flags] (see the top of main.go)")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster")
	kind := fs.String("kind", "", "Deployment, StatefulSet or DaemonSet")
	namespace := fs.String("namespace", "default", "namespace of the workload")
	name := fs.String("name", "", "name of the workload")
	object := fs.String("object", "", "read the object's JSON from this file (- for stdin) instead of the cluster")
	luaDir := fs.String("lua", "", "integrations/argocd/lua, to run the shipped Argo CD health customizations")
	objects := fs.Bool("objects", false, "put the object judged in each line")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	var scripts map[string]HealthScript
	if *luaDir != "" {
		var err error
		if scripts, err = loadScripts(*luaDir); err != nil {
			return fmt.Errorf("--lua: %w", err)
		}
	}
	enc := json.NewEncoder(stdout)
	out := func(u *unstructured.Unstructured) error { return emit(enc, u, scripts, *objects) }

	switch args[0] {
	case "argocd-cm":
		if scripts == nil {
			return errors.New("argocd-cm needs --lua DIR")
		}
		_, err := io.WriteString(stdout, renderArgoCDConfigMap(scripts))
		return err
	case "once":
		if *object != "" {
			u, err := readObject(*object, stdin)
			if err != nil {
				return err
			}
			return out(u)
		}
		client, gvr, err := connect(*kubeconfig, *kind, *name)
		if err != nil {
			return err
		}
		u, err := client.Resource(gvr).Namespace(*namespace).Get(context.Background(), *name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		return out(u)
	case "watch":
		client, gvr, err := connect(*kubeconfig, *kind, *name)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		return watchObject(ctx, client.Resource(gvr).Namespace(*namespace), *name, func(u *unstructured.Unstructured) error { return out(u) })
	}
	return fmt.Errorf("unknown command %q: once, watch or argocd-cm", args[0])
}

func connect(kubeconfig, kind, name string) (dynamic.Interface, schema.GroupVersionResource, error) {
	gvr, ok := resources[kind]
	if !ok {
		return nil, gvr, fmt.Errorf("--kind %q: one of Deployment, StatefulSet, DaemonSet", kind)
	}
	if name == "" {
		return nil, gvr, errors.New("--name is needed")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, gvr, fmt.Errorf("--kubeconfig: %w", err)
	}
	client, err := dynamic.NewForConfig(cfg)
	return client, gvr, err
}

func readObject(path string, stdin io.Reader) (*unstructured.Unstructured, error) {
	var raw []byte
	var err error
	if path == "-" {
		raw, err = io.ReadAll(stdin)
	} else {
		raw, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("--object %s: %w", path, err)
	}
	return u, nil
}

func emit(out *json.Encoder, u *unstructured.Unstructured, scripts map[string]HealthScript, withObject bool) error {
	v, err := computeVerdicts(u, scripts)
	if err != nil {
		return err
	}
	if withObject {
		v.Object = u.Object
	}
	v.At = time.Now().UnixMilli()
	return out.Encode(v)
}

// watchObject calls fn with every state of one object, watching again from the
// last resourceVersion when the apiserver ends a watch, listing again when it
// says that resourceVersion is too old, until ctx ends.
func watchObject(ctx context.Context, client dynamic.ResourceInterface, name string, fn func(*unstructured.Unstructured) error) error {
	selector := fields.OneTermEqualSelector("metadata.name", name).String()
	rv := ""
	for ctx.Err() == nil {
		if rv == "" {
			list, err := client.List(ctx, metav1.ListOptions{FieldSelector: selector})
			if err != nil {
				return err
			}
			for i := range list.Items {
				if err := fn(&list.Items[i]); err != nil {
					return err
				}
			}
			rv = list.GetResourceVersion()
		}
		w, err := client.Watch(ctx, metav1.ListOptions{FieldSelector: selector, ResourceVersion: rv, AllowWatchBookmarks: true})
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return err
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				rv = ""
				break
			}
			u, ok := ev.Object.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			rv = u.GetResourceVersion()
			if ev.Type == watch.Added || ev.Type == watch.Modified {
				if err := fn(u); err != nil {
					w.Stop()
					return err
				}
			}
		}
		w.Stop()
	}
	return nil
}
