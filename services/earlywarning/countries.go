package earlywarning

import (
	"strconv"
	"strings"

	demarchev1 "github.com/demarche/demarche/proto/demarche/v1"
)

// countryTable maps ISO 3166-1 alpha-2 codes to their ISO 3166-1 numeric code
// (ACLED's iso column; 000 when there is none, as for Kosovo) and the English
// names conflict-event datasets use: the CLDR short name first, then the
// spellings of ACLED ("Democratic Republic of Congo", "eSwatini") and UCDP GED
// ("DR Congo (Zaire)", "Myanmar (Burma)"). Names are compared after
// normalisation (case, accents, punctuation, "&", "St."); a UCDP-style
// parenthetical ("Russia (Soviet Union)") is also tried without it.
// Every code here is known to demarchev1.RegionOf (a test checks it).
const countryTable = `
DZ 012 Algeria
AO 024 Angola
BJ 204 Benin
BW 072 Botswana
BF 854 Burkina Faso|Burkina Faso (Upper Volta)
BI 108 Burundi
CV 132 Cape Verde|Cabo Verde
CM 120 Cameroon
CF 140 Central African Republic
TD 148 Chad
KM 174 Comoros
CG 178 Congo - Brazzaville|Republic of Congo|Congo|Congo, Republic of|Congo-Brazzaville|Republic of the Congo
CD 180 Congo - Kinshasa|Democratic Republic of Congo|Democratic Republic of the Congo|DR Congo|DR Congo (Zaire)|DRC|Congo, DRC|Zaire|Congo, Democratic Republic of
CI 384 Côte d’Ivoire|Ivory Coast|Cote d'Ivoire
DJ 262 Djibouti
EG 818 Egypt
GQ 226 Equatorial Guinea
ER 232 Eritrea
SZ 748 Swaziland|eSwatini|Eswatini|Kingdom of eSwatini (Swaziland)
ET 231 Ethiopia
GA 266 Gabon
GM 270 Gambia|The Gambia
GH 288 Ghana
GN 324 Guinea
GW 624 Guinea-Bissau
KE 404 Kenya
LS 426 Lesotho
LR 430 Liberia
LY 434 Libya
MG 450 Madagascar|Madagascar (Malagasy)
MW 454 Malawi
ML 466 Mali
MR 478 Mauritania
MU 480 Mauritius
MA 504 Morocco
MZ 508 Mozambique
NA 516 Namibia
NE 562 Niger
NG 566 Nigeria
RW 646 Rwanda
ST 678 São Tomé & Príncipe|Sao Tome and Principe
SN 686 Senegal
SC 690 Seychelles
SL 694 Sierra Leone
SO 706 Somalia
ZA 710 South Africa
SS 728 South Sudan
SD 729 Sudan
TZ 834 Tanzania|United Republic of Tanzania
TG 768 Togo
TN 788 Tunisia
UG 800 Uganda
ZM 894 Zambia
ZW 716 Zimbabwe|Zimbabwe (Rhodesia)
EH 732 Western Sahara
RE 638 Réunion
YT 175 Mayotte
SH 654 St. Helena|Saint Helena|Saint Helena, Ascension and Tristan da Cunha
AG 028 Antigua & Barbuda|Antigua and Barbuda
AR 032 Argentina
BS 044 Bahamas|The Bahamas
BB 052 Barbados
BZ 084 Belize
BO 068 Bolivia|Bolivia (Plurinational State of)
BR 076 Brazil
CA 124 Canada
CL 152 Chile
CO 170 Colombia
CR 188 Costa Rica
CU 192 Cuba
DM 212 Dominica
DO 214 Dominican Republic
EC 218 Ecuador
SV 222 El Salvador
GD 308 Grenada
GT 320 Guatemala
GY 328 Guyana
HT 332 Haiti
HN 340 Honduras
JM 388 Jamaica
MX 484 Mexico
NI 558 Nicaragua
PA 591 Panama
PY 600 Paraguay
PE 604 Peru
KN 659 St. Kitts & Nevis|Saint Kitts and Nevis
LC 662 St. Lucia|Saint Lucia
VC 670 St. Vincent & Grenadines|Saint Vincent and the Grenadines|Saint Vincent and Grenadines
SR 740 Suriname
TT 780 Trinidad & Tobago|Trinidad and Tobago
US 840 United States|United States of America|USA
UY 858 Uruguay
VE 862 Venezuela|Venezuela (Bolivarian Republic of)
PR 630 Puerto Rico
AI 660 Anguilla
AW 533 Aruba
BM 060 Bermuda
BQ 535 Caribbean Netherlands|Bonaire, Sint Eustatius and Saba
VG 092 British Virgin Islands|Virgin Islands, British
KY 136 Cayman Islands
CW 531 Curaçao
FK 238 Falkland Islands
GF 254 French Guiana
GL 304 Greenland
GP 312 Guadeloupe
MQ 474 Martinique
MS 500 Montserrat
BL 652 St. Barthélemy|Saint Barthelemy
MF 663 St. Martin|Saint Martin|Saint-Martin
PM 666 St. Pierre & Miquelon|Saint Pierre and Miquelon
SX 534 Sint Maarten
TC 796 Turks & Caicos Islands|Turks and Caicos Islands
VI 850 U.S. Virgin Islands|Virgin Islands, U.S.|United States Virgin Islands
AF 004 Afghanistan
BD 050 Bangladesh
BT 064 Bhutan
BN 096 Brunei|Brunei Darussalam
KH 116 Cambodia|Cambodia (Kampuchea)
CN 156 China
IN 356 India
ID 360 Indonesia
JP 392 Japan
KZ 398 Kazakhstan
KP 408 North Korea|Korea, North|Democratic People's Republic of Korea
KR 410 South Korea|Korea, South|Republic of Korea
KG 417 Kyrgyzstan
LA 418 Laos|Lao PDR|Lao People's Democratic Republic
MY 458 Malaysia
MV 462 Maldives
MN 496 Mongolia
MM 104 Myanmar (Burma)|Myanmar|Burma
NP 524 Nepal
PK 586 Pakistan
PH 608 Philippines
SG 702 Singapore
LK 144 Sri Lanka
TW 158 Taiwan
TJ 762 Tajikistan
TH 764 Thailand
TL 626 Timor-Leste|East Timor|Timor Leste
TM 795 Turkmenistan
UZ 860 Uzbekistan
VN 704 Vietnam|Vietnam (North Vietnam)|Viet Nam
AU 036 Australia
FJ 242 Fiji
KI 296 Kiribati
MH 584 Marshall Islands
FM 583 Micronesia|Micronesia (Federated States of)
NR 520 Nauru
NZ 554 New Zealand
PW 585 Palau
PG 598 Papua New Guinea
WS 882 Samoa
SB 090 Solomon Islands
TO 776 Tonga
TV 798 Tuvalu
VU 548 Vanuatu
HK 344 Hong Kong SAR China|Hong Kong
MO 446 Macau SAR China|Macao|Macau
AS 016 American Samoa
CK 184 Cook Islands
GU 316 Guam
NC 540 New Caledonia
NF 574 Norfolk Island
MP 580 Northern Mariana Islands
NU 570 Niue
PF 258 French Polynesia
PN 612 Pitcairn Islands
TK 772 Tokelau
WF 876 Wallis & Futuna|Wallis and Futuna
CC 166 Cocos (Keeling) Islands|Cocos Islands
CX 162 Christmas Island
IO 086 British Indian Ocean Territory
UM 581 U.S. Outlying Islands|United States Minor Outlying Islands
AL 008 Albania
AD 020 Andorra
AM 051 Armenia
AT 040 Austria
AZ 031 Azerbaijan
BY 112 Belarus
BE 056 Belgium
BA 070 Bosnia & Herzegovina|Bosnia and Herzegovina|Bosnia-Herzegovina
BG 100 Bulgaria
HR 191 Croatia
CY 196 Cyprus
CZ 203 Czechia|Czech Republic
DK 208 Denmark
EE 233 Estonia
FI 246 Finland
FR 250 France
GE 268 Georgia
DE 276 Germany
GR 300 Greece
HU 348 Hungary
IS 352 Iceland
IE 372 Ireland
IT 380 Italy
XK 000 Kosovo
LV 428 Latvia
LI 438 Liechtenstein
LT 440 Lithuania
LU 442 Luxembourg
MT 470 Malta
MD 498 Moldova|Republic of Moldova
MC 492 Monaco
ME 499 Montenegro
NL 528 Netherlands
MK 807 Macedonia|North Macedonia|Macedonia, FYR
NO 578 Norway
PL 616 Poland
PT 620 Portugal
RO 642 Romania
RU 643 Russia|Russia (Soviet Union)|Russian Federation
SM 674 San Marino
RS 688 Serbia|Serbia (Yugoslavia)
SK 703 Slovakia
SI 705 Slovenia
ES 724 Spain
SE 752 Sweden
CH 756 Switzerland
UA 804 Ukraine
GB 826 United Kingdom|UK|Great Britain
VA 336 Vatican City|Holy See
AX 248 Åland Islands
FO 234 Faroe Islands
GI 292 Gibraltar
GG 831 Guernsey
IM 833 Isle of Man
JE 832 Jersey
SJ 744 Svalbard & Jan Mayen|Svalbard and Jan Mayen
BH 048 Bahrain
IR 364 Iran|Iran, Islamic Republic of
IQ 368 Iraq
IL 376 Israel
JO 400 Jordan
KW 414 Kuwait
LB 422 Lebanon
OM 512 Oman
PS 275 Palestinian Territories|Palestine|State of Palestine|Occupied Palestinian Territory
QA 634 Qatar
SA 682 Saudi Arabia
SY 760 Syria|Syrian Arab Republic
TR 792 Turkey|Turkiye|Türkiye
AE 784 United Arab Emirates
YE 887 Yemen|Yemen (North Yemen)
`

var (
	countryByName    = map[string]string{}
	countryByNumeric = map[int]string{}
)

func init() {
	for _, line := range strings.Split(strings.TrimSpace(countryTable), "\n") {
		parts := strings.SplitN(line, " ", 3)
		code, names := parts[0], strings.Split(parts[2], "|")
		if n, err := strconv.Atoi(parts[1]); err == nil && n > 0 {
			countryByNumeric[n] = code
		}
		for _, name := range names {
			countryByName[normaliseName(name)] = code
		}
		countryByName[strings.ToLower(code)] = code
	}
}

var nameReplacer = strings.NewReplacer(
	"&", " and ", ".", " ", ",", " ", "'", "", "’", "", "-", " ", "/", " ",
	"á", "a", "à", "a", "â", "a", "ã", "a", "ä", "a", "å", "a", "ç", "c", "é", "e", "è", "e", "ê", "e", "ë", "e",
	"í", "i", "ì", "i", "î", "i", "ï", "i", "ñ", "n", "ó", "o", "ò", "o", "ô", "o", "õ", "o", "ö", "o",
	"ú", "u", "ù", "u", "û", "u", "ü", "u", "ý", "y",
)

// normaliseName folds a country name for lookup: lower case, no accents or
// punctuation, "&" as "and", "St" as "saint", single spaces.
func normaliseName(s string) string {
	s = nameReplacer.Replace(strings.ToLower(strings.TrimSpace(s)))
	words := strings.Fields(s)
	for i, w := range words {
		if w == "st" {
			words[i] = "saint"
		}
	}
	return strings.Join(words, " ")
}

// CountryCode maps a dataset's country to its ISO 3166-1 alpha-2 code: by the
// numeric code when given and known, else by name. ok is false when neither
// is known.
func CountryCode(name, numeric string) (code string, ok bool) {
	if n, err := strconv.Atoi(strings.TrimSpace(numeric)); err == nil && n > 0 {
		if c, found := countryByNumeric[n]; found {
			return c, true
		}
	}
	key := normaliseName(name)
	if c, found := countryByName[key]; found {
		return c, true
	}
	if i := strings.Index(name, "("); i > 0 { // "Yemen (North Yemen)" -> "Yemen"
		if c, found := countryByName[normaliseName(name[:i])]; found {
			return c, true
		}
	}
	return "", false
}

// knownCountry reports whether code is known to the platform's region table.
func knownCountry(code string) bool {
	_, ok := demarchev1.RegionOf(code)
	return ok
}
