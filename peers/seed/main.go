// Command seed is a Go service built the way the blog post this project grew from builds one:
// it registers with Consul before it listens, with a uuid ID, an HTTP check every minute
// (20 s timeout) and the tag urlprefix-/oops, and it deregisters only when ListenAndServe
// returns an error. A SIGTERM therefore leaves its registration behind. The tests and
// benches run it beside discoverable's cool_app as the baseline.
//
// It reads its listen address from BIND_ADDR (default 127.0.0.1:3000) and Consul's address
// from CONSUL_HTTP_ADDR, as consul/api does.
package main

import (
	"crypto/rand"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"

	consulapi "github.com/hashicorp/consul/api"
)

func uuid4() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		log.Fatalf("uuid: %v", err)
	}
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func main() {
	bind := os.Getenv("BIND_ADDR")
	if bind == "" {
		bind = "127.0.0.1:3000"
	}
	host, portText, err := net.SplitHostPort(bind)
	if err != nil {
		log.Fatalf("BIND_ADDR %q: %v", bind, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port == 0 {
		log.Fatalf("BIND_ADDR %q: the recipe needs a fixed port, it registers before listening", bind)
	}

	client, err := consulapi.NewClient(consulapi.DefaultConfig())
	if err != nil {
		log.Fatalf("consul client: %v", err)
	}
	id := uuid4()
	registration := &consulapi.AgentServiceRegistration{
		ID:      id,
		Name:    "cool_app",
		Address: host,
		Port:    port,
		Tags:    []string{"urlprefix-/oops"},
		Check: &consulapi.AgentServiceCheck{
			HTTP:     fmt.Sprintf("http://%s:%d/health", host, port),
			Interval: "1m",
			Timeout:  "20s",
		},
	}
	if err := client.Agent().ServiceRegister(registration); err != nil {
		log.Fatalf("register: %v", err)
	}
	log.Printf("registered %s", id)

	http.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "OK")
	})
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "home page")
	})
	if err := http.ListenAndServe(bind, nil); err != nil {
		log.Printf("serve: %v", err)
		if err := client.Agent().ServiceDeregister(id); err != nil {
			log.Printf("deregister: %v", err)
		}
		os.Exit(1)
	}
}
