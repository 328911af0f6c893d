package main

// The only Dapr components this daprd knows. Each line mirrors a file in
// github.com/dapr/dapr/cmd/daprd/components (which is gated behind the
// allcomponents/stablecomponents build tags and would pull in every
// component in components-contrib). To add one, copy its RegisterComponent
// line from that directory at the pinned dapr version.

import (
	"github.com/dapr/components-contrib/bindings/cron"
	"github.com/dapr/components-contrib/nameresolution/mdns"
	pubsubRedis "github.com/dapr/components-contrib/pubsub/redis"
	secretsK8s "github.com/dapr/components-contrib/secretstores/kubernetes"
	secretsEnv "github.com/dapr/components-contrib/secretstores/local/env"
	secretsFile "github.com/dapr/components-contrib/secretstores/local/file"
	stateRedis "github.com/dapr/components-contrib/state/redis"

	bindingsLoader "github.com/dapr/dapr/pkg/components/bindings"
	nrLoader "github.com/dapr/dapr/pkg/components/nameresolution"
	pubsubLoader "github.com/dapr/dapr/pkg/components/pubsub"
	secretstoresLoader "github.com/dapr/dapr/pkg/components/secretstores"
	stateLoader "github.com/dapr/dapr/pkg/components/state"
)

func init() {
	pubsubLoader.DefaultRegistry.RegisterComponent(pubsubRedis.NewRedisStreams, "redis")                // pubsub.redis
	stateLoader.DefaultRegistry.RegisterComponent(stateRedis.NewRedisStateStore, "redis")               // state.redis
	bindingsLoader.DefaultRegistry.RegisterInputBinding(cron.NewCron, "cron")                           // bindings.cron
	secretstoresLoader.DefaultRegistry.RegisterComponent(secretsFile.NewLocalSecretStore, "local.file") // secretstores.local.file
	secretstoresLoader.DefaultRegistry.RegisterComponent(secretsEnv.NewEnvSecretStore, "local.env")     // secretstores.local.env
	secretstoresLoader.DefaultRegistry.RegisterComponent(secretsK8s.NewKubernetesSecretStore, "kubernetes")
	nrLoader.DefaultRegistry.RegisterComponent(mdns.NewResolver, "mdns") // nameresolution.mdns
}
