package demarchev1

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// The embedded descriptor set describes exactly the generated code's schemas.
func TestDescriptorSetCurrent(t *testing.T) {
	set, err := SchemaFileSet()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, fdp := range set.GetFile() {
		if !strings.HasPrefix(fdp.GetName(), "demarche/") {
			continue
		}
		seen[fdp.GetName()] = true
		fd, err := protoregistry.GlobalFiles.FindFileByPath(fdp.GetName())
		if err != nil {
			t.Errorf("%s is in descriptors.binpb but has no generated code: run 'make proto'", fdp.GetName())
			continue
		}
		want := protodesc.ToFileDescriptorProto(fd)
		got := proto.Clone(fdp).(*descriptorpb.FileDescriptorProto)
		got.SourceCodeInfo = nil
		if !proto.Equal(got, want) {
			t.Errorf("descriptors.binpb is out of date for %s: run 'make proto'", fdp.GetName())
		}
	}
	protoregistry.GlobalFiles.RangeFilesByPackage("demarche.v1", func(fd protoreflect.FileDescriptor) bool {
		if !seen[fd.Path()] {
			t.Errorf("%s has generated code but is not in descriptors.binpb: run 'make proto'", fd.Path())
		}
		return true
	})
	files, err := SchemaFiles()
	if err != nil {
		t.Fatal(err)
	}
	d, err := files.FindDescriptorByName("demarche.v1.StageEntered")
	if err != nil {
		t.Fatal(err)
	}
	if c := d.ParentFile().SourceLocations().ByDescriptor(d).LeadingComments; !strings.Contains(c, "entered a lifecycle stage") {
		t.Errorf("StageEntered's comment is missing from the embedded schemas: %q", c)
	}
}
