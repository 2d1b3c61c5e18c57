package kube

import (
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// NewClient connects with a kubeconfig file, or with the in-cluster
// ServiceAccount when kubeconfig is empty.
func NewClient(kubeconfig, userAgent string) (kubernetes.Interface, error) {
	cfg, err := restConfig(kubeconfig, userAgent)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to create a Kubernetes client: %w", err)
	}
	return cs, nil
}

// NewMetadataClient connects as NewClient does, for the metadata of any
// resource (custom ones included) as PartialObjectMetadata.
func NewMetadataClient(kubeconfig, userAgent string) (metadata.Interface, error) {
	cfg, err := restConfig(kubeconfig, userAgent)
	if err != nil {
		return nil, err
	}
	mc, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to create a Kubernetes metadata client: %w", err)
	}
	return mc, nil
}

func restConfig(kubeconfig, userAgent string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig == "" {
		cfg, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("kubernetes: not running in a cluster and no kubeconfig given: %w", err)
		}
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubernetes.kubeconfig: %s: %w", kubeconfig, err)
		}
	}
	cfg.UserAgent = userAgent
	// An agent on every node: keep its share of the API server small.
	cfg.QPS, cfg.Burst = 5, 10
	return cfg, nil
}
