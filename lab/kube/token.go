package kube

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// minTokenTTL is the shortest expiry the TokenRequest API grants.
const minTokenTTL = 10 * time.Minute

// TokenKubeconfig asks for a kubeconfig that authenticates as a
// ServiceAccount with a bound token from the TokenRequest API — what an
// agent of the DaemonSet runs as.
type TokenKubeconfig struct {
	Namespace      string // required
	ServiceAccount string // required; must exist
	// Server is the apiserver URL written in the kubeconfig.
	// Default: the admin config's host.
	Server string
	// TTL is the token's lifetime; at least 10 minutes. Default: 24 hours.
	TTL time.Duration
	// Out is the file written (mode 0600). Required.
	Out string
}

// ServiceAccountKubeconfig requests a token for req.ServiceAccount with the
// admin's credentials and writes a kubeconfig holding it, trusting the
// admin config's CA.
func ServiceAccountKubeconfig(ctx context.Context, admin *rest.Config, req TokenKubeconfig) error {
	if req.TTL == 0 {
		req.TTL = 24 * time.Hour
	}
	if req.Server == "" {
		req.Server = admin.Host
	}
	var errs []error
	if req.Namespace == "" {
		errs = append(errs, errors.New("Namespace: required"))
	}
	if req.ServiceAccount == "" {
		errs = append(errs, errors.New("ServiceAccount: required"))
	}
	if req.Out == "" {
		errs = append(errs, errors.New("Out: required"))
	}
	if req.TTL < minTokenTTL {
		errs = append(errs, fmt.Errorf("TTL: %s is shorter than %s", req.TTL, minTokenTTL))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid token kubeconfig request: %w", err)
	}
	ca := admin.CAData
	if len(ca) == 0 && admin.CAFile != "" {
		b, err := os.ReadFile(admin.CAFile)
		if err != nil {
			return fmt.Errorf("failed to read CA: %w", err)
		}
		ca = b
	}
	client, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return fmt.Errorf("failed to create client: %w", err)
	}
	secs := int64(req.TTL / time.Second)
	tr, err := client.CoreV1().ServiceAccounts(req.Namespace).CreateToken(ctx, req.ServiceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}},
		metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("failed to request token for serviceaccount %s/%s: %w", req.Namespace, req.ServiceAccount, err)
	}
	user := "system:serviceaccount:" + req.Namespace + ":" + req.ServiceAccount
	return writeKubeconfig(kubeconfig(req.Server, ca, user, credentials{Token: tr.Status.Token}), req.Out)
}

// ServiceAccountKubeconfig is the package function with this control
// plane's admin; an empty req.Server means Server().
func (cp *ControlPlane) ServiceAccountKubeconfig(ctx context.Context, req TokenKubeconfig) error {
	return ServiceAccountKubeconfig(ctx, cp.AdminRESTConfig(), req)
}
