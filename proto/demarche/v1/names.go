package demarchev1

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Enum values have names such as CRISIS_TYPE_UNCONSTITUTIONAL_CHANGE. People and
// subjects use slugs instead: "unconstitutional-change". The mapping is derived
// from the enum descriptors, so a new enum value needs no table edit.

// enumSlug turns an enum value into its slug: prefix dropped, lower case, '-' for '_'.
func enumSlug(d protoreflect.EnumDescriptor, n protoreflect.EnumNumber) string {
	v := d.Values().ByNumber(n)
	if v == nil {
		return fmt.Sprintf("%d", n)
	}
	name := strings.TrimPrefix(string(v.Name()), enumPrefix(d))
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

// enumPrefix is the upper-snake enum name plus '_', e.g. "CRISIS_TYPE_".
func enumPrefix(d protoreflect.EnumDescriptor) string {
	var b strings.Builder
	for i, r := range string(d.Name()) {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String()) + "_"
}

// enumSlugs lists the slugs of every value but UNSPECIFIED, in declaration order.
func enumSlugs(d protoreflect.EnumDescriptor) []string {
	var out []string
	for i := 0; i < d.Values().Len(); i++ {
		if n := d.Values().Get(i).Number(); n != 0 {
			out = append(out, enumSlug(d, n))
		}
	}
	return out
}

// parseEnum accepts a slug ("good-offices"), the short name ("GOOD_OFFICES") or
// the full name ("STAGE_GOOD_OFFICES"), case-insensitively.
func parseEnum(d protoreflect.EnumDescriptor, kind, s string) (protoreflect.EnumNumber, error) {
	want := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), "_", "-"))
	prefix := strings.ToLower(strings.ReplaceAll(enumPrefix(d), "_", "-"))
	for i := 0; i < d.Values().Len(); i++ {
		n := d.Values().Get(i).Number()
		if n == 0 {
			continue
		}
		if slug := enumSlug(d, n); want == slug || want == prefix+slug {
			return n, nil
		}
	}
	return 0, &FieldError{Field: kind, Reason: fmt.Sprintf("%q is not a known %s (allowed: %s)", s, kind, strings.Join(enumSlugs(d), ", "))}
}

// Slug returns the stage's slug, e.g. "good-offices".
func (x Stage) Slug() string { return enumSlug(x.Descriptor(), x.Number()) }

// Slug returns the crisis type's slug, e.g. "unconstitutional-change".
func (x CrisisType) Slug() string { return enumSlug(x.Descriptor(), x.Number()) }

// Slug returns the confidentiality level's slug, e.g. "restricted".
func (x Confidentiality) Slug() string { return enumSlug(x.Descriptor(), x.Number()) }

// Slug returns the region's slug, e.g. "asia-pacific".
func (x Region) Slug() string { return enumSlug(x.Descriptor(), x.Number()) }

// Slug returns the outcome's slug, e.g. "averted".
func (x Outcome) Slug() string { return enumSlug(x.Descriptor(), x.Number()) }

// StageSlugs lists every stage's slug in lifecycle order.
func StageSlugs() []string { return enumSlugs(Stage(0).Descriptor()) }

// CrisisTypeSlugs lists every crisis type's slug.
func CrisisTypeSlugs() []string { return enumSlugs(CrisisType(0).Descriptor()) }

// ConfidentialitySlugs lists every confidentiality level's slug.
func ConfidentialitySlugs() []string { return enumSlugs(Confidentiality(0).Descriptor()) }

// ParseStage reads a stage from its slug or enum name.
func ParseStage(s string) (Stage, error) {
	n, err := parseEnum(Stage(0).Descriptor(), "stage", s)
	return Stage(n), err
}

// ParseCrisisType reads a crisis type from its slug or enum name.
func ParseCrisisType(s string) (CrisisType, error) {
	n, err := parseEnum(CrisisType(0).Descriptor(), "crisis_type", s)
	return CrisisType(n), err
}

// ParseConfidentiality reads a confidentiality level from its slug or enum name.
func ParseConfidentiality(s string) (Confidentiality, error) {
	n, err := parseEnum(Confidentiality(0).Descriptor(), "confidentiality", s)
	return Confidentiality(n), err
}

// ParseRegion reads a region from its slug or enum name.
func ParseRegion(s string) (Region, error) {
	n, err := parseEnum(Region(0).Descriptor(), "region", s)
	return Region(n), err
}

// LifecycleStages are the six working stages in their default order (closure excluded).
var LifecycleStages = []Stage{
	Stage_STAGE_WARNING,
	Stage_STAGE_GOOD_OFFICES,
	Stage_STAGE_FACT_FINDING,
	Stage_STAGE_ENVOY_DEPLOYMENT,
	Stage_STAGE_RAPID_RESPONSE_FUNDING,
	Stage_STAGE_SUSTAINED_FOLLOW_UP,
}

// Slug returns the option's slug, e.g. "quiet-diplomacy".
func (x GoodOfficesOption) Slug() string { return enumSlug(x.Descriptor(), x.Number()) }

// Slug returns the engagement's slug, e.g. "meeting-with-party".
func (x EngagementKind) Slug() string { return enumSlug(x.Descriptor(), x.Number()) }

// Slug returns the Council action's slug, e.g. "article-99-letter".
func (x CouncilActionKind) Slug() string { return enumSlug(x.Descriptor(), x.Number()) }

// Slug returns the field report's slug, e.g. "situation-report".
func (x FieldReportKind) Slug() string { return enumSlug(x.Descriptor(), x.Number()) }

// Slug returns the self-declared gender's slug, e.g. "woman" ("unspecified":
// not declared).
func (x SelfDeclaredGender) Slug() string { return enumSlug(x.Descriptor(), x.Number()) }

// Slug returns the mandating body's slug, e.g. "security-council".
func (x MandatingBody) Slug() string { return enumSlug(x.Descriptor(), x.Number()) }

// Slug returns the recommendation's slug, e.g. "hand-over".
func (x FollowUpRecommendation) Slug() string { return enumSlug(x.Descriptor(), x.Number()) }

// Slug returns the role's slug, e.g. "burden-sharing".
func (x PartnerRoleKind) Slug() string { return enumSlug(x.Descriptor(), x.Number()) }

// Slug returns the partner kind's slug, e.g. "contact-group".
func (x PartnerKind) Slug() string { return enumSlug(x.Descriptor(), x.Number()) }

// PartnerKindSlugs lists the partner kinds' slugs.
func PartnerKindSlugs() []string { return enumSlugs(PartnerKind(0).Descriptor()) }

// Slug returns the recipient's slug, e.g. "peacebuilding-commission".
func (x HandOverRecipient) Slug() string { return enumSlug(x.Descriptor(), x.Number()) }

// Slug returns the deadline status's slug, e.g. "at-risk".
func (x DeadlineStatus) Slug() string { return enumSlug(x.Descriptor(), x.Number()) }

// Slug returns the stage status's slug, e.g. "skipped".
func (x StageStatus) Slug() string { return enumSlug(x.Descriptor(), x.Number()) }

// Slug returns the role's slug, e.g. "funding-officer".
func (x Role) Slug() string { return enumSlug(x.Descriptor(), x.Number()) }

// ParseGoodOfficesOption reads an option from its slug or enum name.
func ParseGoodOfficesOption(s string) (GoodOfficesOption, error) {
	n, err := parseEnum(GoodOfficesOption(0).Descriptor(), "option", s)
	return GoodOfficesOption(n), err
}

// ParseMandatingBody reads a mandating body from its slug or enum name.
func ParseMandatingBody(s string) (MandatingBody, error) {
	n, err := parseEnum(MandatingBody(0).Descriptor(), "mandating_body", s)
	return MandatingBody(n), err
}

// ParseFollowUpRecommendation reads a recommendation from its slug or enum name.
func ParseFollowUpRecommendation(s string) (FollowUpRecommendation, error) {
	n, err := parseEnum(FollowUpRecommendation(0).Descriptor(), "recommendation", s)
	return FollowUpRecommendation(n), err
}

// ParsePartnerRoleKind reads a partner role from its slug or enum name.
func ParsePartnerRoleKind(s string) (PartnerRoleKind, error) {
	n, err := parseEnum(PartnerRoleKind(0).Descriptor(), "role", s)
	return PartnerRoleKind(n), err
}

// ParsePartnerKind reads a partner kind from its slug ("group-of-friends") or enum name.
func ParsePartnerKind(s string) (PartnerKind, error) {
	n, err := parseEnum(PartnerKind(0).Descriptor(), "kind", s)
	return PartnerKind(n), err
}

// ParseRole reads a principal's role from its slug ("funding-officer") or enum name.
func ParseRole(s string) (Role, error) {
	n, err := parseEnum(Role(0).Descriptor(), "role", s)
	return Role(n), err
}

// ParseOutcome reads an outcome from its slug or enum name.
func ParseOutcome(s string) (Outcome, error) {
	n, err := parseEnum(Outcome(0).Descriptor(), "outcome", s)
	return Outcome(n), err
}

// EnumValueSlug is an enum value's slug ("good-offices" for
// STAGE_GOOD_OFFICES): the HTTP API's JSON writes enums so (pkg/apijson).
func EnumValueSlug(d protoreflect.EnumDescriptor, n protoreflect.EnumNumber) string {
	return enumSlug(d, n)
}

// ParseEnumValue reads an enum value from its slug, short or full name
// (case-insensitively); the error names the field and the allowed slugs.
func ParseEnumValue(d protoreflect.EnumDescriptor, field, s string) (protoreflect.EnumNumber, error) {
	return parseEnum(d, field, s)
}

// EnumSlugs lists the slugs of any Démarche enum, for help texts.
func EnumSlugs(e protoreflect.Enum) []string { return enumSlugs(e.Descriptor()) }
