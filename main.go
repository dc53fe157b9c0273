// Command vmpooler keeps pools of ready VMs in vSphere and hands them out
// over a REST API compatible with Puppet's vmpooler.
package main

func main() {}
