package demarchev1

import "strings"

// Country codes (ISO 3166-1 alpha-2, plus XK for Kosovo as used by the UN system
// and ACLED) grouped by the region that regional partners subscribe to. Edit here
// to move a country; validation and subjects follow.
var regionCountries = map[Region]string{
	Region_REGION_AFRICA: "DZ AO BJ BW BF BI CV CM CF TD KM CG CD CI DJ EG GQ ER SZ ET GA GM GH GN GW KE LS LR LY MG " +
		"MW ML MR MU MA MZ NA NE NG RW ST SN SC SL SO ZA SS SD TZ TG TN UG ZM ZW EH RE YT SH",
	Region_REGION_AMERICAS: "AG AR BS BB BZ BO BR CA CL CO CR CU DM DO EC SV GD GT GY HT HN JM MX NI PA PY PE KN LC VC " +
		"SR TT US UY VE PR AI AW BM BQ VG KY CW FK GF GL GP MQ MS BL MF PM SX TC VI",
	Region_REGION_ASIA_PACIFIC: "AF BD BT BN KH CN IN ID JP KZ KP KR KG LA MY MV MN MM NP PK PH SG LK TW TJ TH TL TM UZ VN " +
		"AU FJ KI MH FM NR NZ PW PG WS SB TO TV VU HK MO AS CK GU NC NF MP NU PF PN TK WF CC CX IO UM",
	Region_REGION_EUROPE: "AL AD AM AT AZ BY BE BA BG HR CY CZ DK EE FI FR GE DE GR HU IS IE IT XK LV LI LT LU MT MD MC " +
		"ME NL MK NO PL PT RO RU SM RS SK SI ES SE CH UA GB VA AX FO GI GG IM JE SJ",
	Region_REGION_MIDDLE_EAST: "BH IR IQ IL JO KW LB OM PS QA SA SY TR AE YE",
}

var countryRegion = func() map[string]Region {
	m := make(map[string]Region)
	for r, codes := range regionCountries {
		for _, c := range strings.Fields(codes) {
			m[c] = r
		}
	}
	return m
}()

// RegionOf returns the region of an ISO 3166-1 alpha-2 code (upper case) and
// whether the code is known.
func RegionOf(countryCode string) (Region, bool) {
	r, ok := countryRegion[countryCode]
	return r, ok
}
